//! Item 1: the auth_file the configuration names is well-formed, holds hashed secrets (md5 or
//! SCRAM; plaintext → warn) and is not readable by group or others (fail; the mode is shown).
//! Reads the file and its metadata; opens no socket.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;

use super::{Findings, Loaded, Outcome, Status};
use crate::config::userlist::{self, Secret};
use crate::config::{AuthType, Key};

/// Judges the auth_file of `loaded`.
pub fn check(loaded: &Loaded) -> Outcome {
    let config = match loaded.config() {
        Ok(config) => config,
        Err(skip) => return skip,
    };
    let auth = config.pgbouncer.auth_type();
    // PgBouncer reads no auth_file for these (`requires_auth_file` in its loader).
    if matches!(auth, AuthType::Any | AuthType::Pam | AuthType::Passthrough) {
        return Outcome::skip(format!("auth_type = {} reads no auth_file", auth.as_str()));
    }
    let Some(path) = config.pgbouncer.text(Key::AuthFile) else {
        return Outcome::skip(format!(
            "auth_type = {} with no auth_file (auth_query only)",
            auth.as_str()
        ));
    };
    judge_file(Path::new(path))
}

/// Judges one userlist file: its mode, then its entries.
pub fn judge_file(path: &Path) -> Outcome {
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) => return Outcome::new(Status::Fail, format!("cannot read {shown}: {e}")),
    };
    let mode = meta.permissions().mode() & 0o7777;
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) => return Outcome::new(Status::Fail, format!("cannot read {shown}: {e}")),
    };
    let mut findings = Findings::default();
    if mode & 0o077 != 0 {
        findings.note(
            Status::Fail,
            format!("mode {mode:04o}: group/others may read it (chmod 600 {shown})"),
        );
    }
    judge_entries(&text, &shown.to_string(), mode, &mut findings);
    findings.outcome()
}

/// Judges the entries of a userlist's `text` (`shown` names the file in the evidence).
pub fn judge_entries(text: &str, shown: &str, mode: u32, findings: &mut Findings) {
    let entries = match userlist::parse(text) {
        Ok(entries) => entries,
        Err(e) => {
            findings.note(Status::Fail, format!("{shown}:{}: {}", e.line, e.reason));
            return;
        }
    };
    if entries.is_empty() {
        findings.note(
            Status::Warn,
            format!("{shown} has no entries: nobody can log in"),
        );
        return;
    }
    let plain: Vec<&str> = entries
        .iter()
        .filter(|e| matches!(e.secret, Secret::Plain(_)))
        .map(|e| e.user.as_str())
        .collect();
    if !plain.is_empty() {
        findings.note(
            Status::Warn,
            format!(
                "{} plaintext secret{} ({}): hash with `bouncectl hash --user U --write {shown}`",
                plain.len(),
                if plain.len() == 1 { "" } else { "s" },
                plain.join(", ")
            ),
        );
    }
    let count = |kind: &str| entries.iter().filter(|e| e.secret.kind() == kind).count();
    findings.note(
        Status::Pass,
        format!(
            "{shown}: {} entr{} ({} md5, {} scram-sha-256, {} plain), mode {mode:04o}",
            entries.len(),
            if entries.len() == 1 { "y" } else { "ies" },
            count("md5"),
            count("scram-sha-256"),
            count("plain"),
        ),
    );
}

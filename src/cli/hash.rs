//! `hash`: the userlist.txt entry for a user — md5 the three ways PgBouncer's guide shows, or a
//! SCRAM-SHA-256 verifier — printed, or upserted into the file atomically.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::Context as _;
use serde::Serialize;

use super::output::{self, OutputArgs};
use crate::auth::{self, scram};
use crate::config::userlist;

/// Arguments of `bouncectl hash`.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:\n  \
    bouncectl hash --user dbuser --password yourpassword\n  \
    printf '%s' \"$PW\" | bouncectl hash --user app --password-stdin --scram --write userlist.txt\n  \
    bouncectl hash --user dbuser --method all --database-url postgresql://postgres@127.0.0.1/postgres --json")]
pub struct Args {
    /// The PostgreSQL role name (md5 secrets are salted with it).
    #[arg(long, short = 'u')]
    pub user: String,
    /// The password (visible in the process list: prefer --password-stdin or the prompt).
    #[arg(long, conflicts_with = "password_stdin")]
    pub password: Option<String>,
    /// Read the password from the first line of standard input.
    #[arg(long)]
    pub password_stdin: bool,
    /// How to compute the md5 secret.
    #[arg(long, value_enum, default_value_t = Method::Native)]
    pub method: Method,
    /// Server for --method psql/all (libpq URL).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Print a SCRAM-SHA-256 verifier instead of an md5 secret.
    #[arg(long)]
    pub scram: bool,
    /// PBKDF2 iterations of the SCRAM verifier.
    #[arg(long, default_value_t = scram::DEFAULT_ITERATIONS, requires = "scram", value_parser = clap::value_parser!(u32).range(1..))]
    pub iterations: u32,
    /// Insert or replace the user's entry in this userlist.txt (atomic; created with mode 0600).
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
}

/// The ways to compute an md5 secret (PgBouncer's guide documents all three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Method {
    /// In-process, as pg_md5 does.
    Native,
    /// Ask PostgreSQL: SELECT 'md5' || md5($1 || $2), parameters bound.
    Psql,
    /// The system md5sum, fed through stdin (never the command line).
    Shell,
    /// Every available method; exit 1 when they disagree.
    All,
}

#[derive(Debug, Serialize)]
struct Report<'a> {
    user: &'a str,
    secret: &'a str,
    line: &'a str,
    methods: BTreeMap<&'static str, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    skipped: BTreeMap<&'static str, &'static str>,
    agree: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    written: Option<&'a Path>,
}

/// Runs `hash`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.scram && args.method != Method::Native {
        return Err(super::usage(
            "--method applies to md5 secrets; --scram is computed in-process",
        ));
    }
    if args.user.is_empty() {
        return Err(super::usage("--user must not be empty"));
    }
    let password = read_password(&args)?;
    let mut methods = BTreeMap::new();
    let mut skipped = BTreeMap::new();
    if args.scram {
        let salt = random_salt()?;
        let verifier = scram::Verifier::derive(&password, &salt, args.iterations);
        methods.insert("native", verifier.to_string());
    } else {
        run_methods(&args, &password, &mut methods, &mut skipped)?;
    }
    let mut results = methods.values();
    let secret = results.next().cloned().unwrap_or_default();
    let agree = results.all(|s| *s == secret);
    let line = userlist::format_line(&args.user, &secret);
    if agree {
        if let Some(path) = &args.write {
            write_entry(path, &args.user, &secret)?;
        }
    }
    if args.output.json {
        output::print_json(&Report {
            user: &args.user,
            secret: &secret,
            line: &line,
            methods,
            skipped,
            agree,
            written: args.write.as_deref().filter(|_| agree),
        })?;
    } else if agree {
        output::print_text(&format!("{line}\n"))?;
    } else {
        for (name, value) in &methods {
            eprintln!("{name:>6}: {value}");
        }
    }
    if !agree {
        eprintln!("bouncectl: hash methods disagree; nothing written");
        return Ok(ExitCode::from(super::EXIT_PROBLEM));
    }
    Ok(ExitCode::SUCCESS)
}

fn run_methods(
    args: &Args,
    password: &str,
    methods: &mut BTreeMap<&'static str, String>,
    skipped: &mut BTreeMap<&'static str, &'static str>,
) -> anyhow::Result<()> {
    let all = args.method == Method::All;
    if all || args.method == Method::Native {
        methods.insert("native", auth::md5_secret(&args.user, password));
    }
    if all || args.method == Method::Psql {
        match args.database_url.as_deref() {
            Some(url) => {
                methods.insert("psql", psql_md5(url, &args.user, password)?);
            }
            None if all => {
                skipped.insert("psql", "no --database-url or DATABASE_URL");
            }
            None => {
                return Err(super::usage(
                    "--method psql needs --database-url or DATABASE_URL",
                ));
            }
        }
    }
    if all || args.method == Method::Shell {
        methods.insert("shell", shell_md5(&args.user, password)?);
    }
    Ok(())
}

fn read_password(args: &Args) -> anyhow::Result<String> {
    let password = if let Some(pw) = &args.password {
        pw.clone()
    } else if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from stdin")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if output::stdin_is_tty() {
        dialoguer::Password::new()
            .with_prompt(format!("Password for {}", args.user))
            .with_confirmation("Repeat password", "passwords do not match")
            .allow_empty_password(false)
            .interact()
            .context("cannot read the password from the terminal")?
    } else {
        return Err(super::usage(
            "no password: give --password or --password-stdin (stdin is not a terminal, so there is no prompt)",
        ));
    };
    if password.is_empty() {
        return Err(super::usage("the password must not be empty"));
    }
    Ok(password)
}

fn psql_md5(url: &str, user: &str, password: &str) -> anyhow::Result<String> {
    super::runtime()?.block_on(async {
        let client = super::admin_client::connect(url).await?;
        super::admin_client::query_text(&client, "SELECT 'md5' || md5($1 || $2)", &[password, user])
            .await
    })
}

fn shell_md5(user: &str, password: &str) -> anyhow::Result<String> {
    let mut child = std::process::Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| super::usage(format!("--method shell needs md5sum on PATH: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(format!("{password}{user}").as_bytes())
            .context("cannot feed md5sum")?;
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .context("cannot read md5sum's output")?;
    }
    let status = child.wait().context("md5sum did not finish")?;
    let digest = out.split_whitespace().next().unwrap_or_default();
    if !status.success() || digest.len() != 32 {
        anyhow::bail!("md5sum failed ({status}): {out:?}");
    }
    Ok(format!("md5{digest}"))
}

fn random_salt() -> anyhow::Result<[u8; scram::SALT_LEN]> {
    let mut salt = [0u8; scram::SALT_LEN];
    getrandom::getrandom(&mut salt)
        .map_err(|e| anyhow::anyhow!("no randomness for the salt: {e}"))?;
    Ok(salt)
}

/// Upserts the entry: temp file beside the target, fsync, rename, fsync the directory.
fn write_entry(path: &Path, user: &str, secret: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};

    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !dir.is_dir() {
        return Err(super::usage(format!(
            "{}: directory does not exist",
            dir.display()
        )));
    }
    let (old, mode) = match std::fs::read(path) {
        Ok(bytes) => {
            let mode = std::fs::metadata(path).map(|m| m.permissions().mode() & 0o7777)?;
            (bytes, mode)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (Vec::new(), 0o600),
        Err(e) => return Err(super::usage(format!("{}: {e}", path.display()))),
    };
    let old = String::from_utf8(old)
        .map_err(|_| super::usage(format!("{}: not UTF-8 text", path.display())))?;
    let new = userlist::upsert(&old, user, secret)
        .map_err(|e| super::usage(format!("{}:{e}", path.display())))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.bouncectl-{}.tmp", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.write_all(new.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(&dir)?.sync_all()
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(super::usage(format!(
            "cannot write {}: {e}",
            path.display()
        )));
    }
    eprintln!("wrote {user}'s entry to {}", path.display());
    Ok(())
}

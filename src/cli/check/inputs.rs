//! The inputs of `check`, read and parsed before any item runs, so that a usage error (exit 2)
//! comes before the first probe: the pgbouncer.ini (kept even when only the files it names are
//! broken), the app's URL, the admin console, PostgreSQL, `--poolers` and `--timeout`.

use std::time::Duration;

use super::{AppUrl, Args, Outcome};
use crate::cli::admin_client;
use crate::config::{Config, ConfigError, ProcessEnv};

/// The pgbouncer.ini given with `--config`, as far as it could be read.
#[derive(Debug)]
pub enum Loaded {
    /// `--config` was not given.
    NotGiven,
    /// The file has problems that stop it from being parsed at all.
    Unusable(Vec<ConfigError>),
    /// Parsed; `problems` lists what [`Config::load`] still found (e.g. in the auth_file).
    Usable {
        /// The parsed configuration.
        config: Box<Config>,
        /// Problems found by the full validation.
        problems: Vec<ConfigError>,
    },
}

impl Loaded {
    /// Reads `path` with [`Config::load`]; when only the files it points at are broken, the
    /// configuration itself is still parsed so that the other items can use it.
    pub fn read(path: Option<&std::path::Path>) -> Self {
        let Some(path) = path else {
            return Loaded::NotGiven;
        };
        match Config::load(path, &ProcessEnv) {
            Ok(config) => Loaded::Usable {
                config: Box::new(config),
                problems: Vec::new(),
            },
            Err(problems) => {
                let text = crate::config::ini::read_text(path);
                let parsed = text.map_err(|e| vec![e]).and_then(|text| {
                    Config::parse_str(&text, &path.display().to_string(), &ProcessEnv)
                });
                match parsed {
                    Ok(config) => Loaded::Usable {
                        config: Box::new(config),
                        problems,
                    },
                    Err(_) => Loaded::Unusable(problems),
                }
            }
        }
    }

    /// The configuration, or the `skip` to report for an item that needs it.
    pub fn config(&self) -> Result<&Config, Outcome> {
        match self {
            Loaded::NotGiven => Err(Outcome::skip("needs --config FILE")),
            Loaded::Unusable(_) => Err(Outcome::skip(
                "pgbouncer.ini could not be parsed (see item 2)",
            )),
            Loaded::Usable { config, .. } => Ok(config),
        }
    }
}

/// Every input, parsed up front so that a usage error exits 2 before any probe runs.
#[derive(Debug)]
pub struct Inputs {
    /// `--config`.
    pub config: Loaded,
    /// `--database-url` / `DATABASE_URL`.
    pub app: Option<AppUrl>,
    /// `--admin-url`.
    pub admin: Option<tokio_postgres::Config>,
    /// `--pg-url`.
    pub pg: Option<tokio_postgres::Config>,
    /// `--poolers`.
    pub poolers: i64,
    /// `--timeout`.
    pub timeout: Duration,
}

impl Inputs {
    /// Parses every flag; the error names the flag at fault.
    pub fn parse(args: &Args) -> anyhow::Result<Self> {
        if args.poolers < 1 {
            return Err(crate::cli::usage(format!(
                "--poolers must be at least 1, got {}",
                args.poolers
            )));
        }
        if let Some(path) = &args.config {
            if !path.is_file() {
                return Err(crate::cli::usage(format!(
                    "--config {}: no such file",
                    path.display()
                )));
            }
        }
        let flagged = |flag: &str, url: &str| {
            admin_client::config(url).map_err(|e| crate::cli::usage(format!("{flag}: {e:#}")))
        };
        let app =
            match &args.database_url {
                Some(url) => Some(AppUrl::parse(url).map_err(|e| {
                    crate::cli::usage(format!("--database-url / DATABASE_URL: {e}"))
                })?),
                None => None,
            };
        Ok(Inputs {
            config: Loaded::read(args.config.as_deref()),
            app,
            admin: args
                .admin_url
                .as_deref()
                .map(|u| flagged("--admin-url", u))
                .transpose()?,
            pg: args
                .pg_url
                .as_deref()
                .map(|u| flagged("--pg-url", u))
                .transpose()?,
            poolers: args.poolers,
            timeout: args.timeout,
        })
    }
}

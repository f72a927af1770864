//! Item 2: pgbouncer.ini passes the config module's validation (the first problems are the
//! evidence), and every distinct server of `[databases]` (the `*` fallback included) resolves
//! and accepts a TCP connection (or, for a Unix socket, a connection to its socket file).

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Findings, Loaded, Outcome, Status};
use crate::config::{Config, Key};

/// Problems quoted in the evidence before "… and N more".
const SHOWN_PROBLEMS: usize = 3;

/// A server address the pooler connects to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Server {
    /// Host name or IP, and port.
    Tcp(String, u16),
    /// A Unix socket directory and port (`<dir>/.s.PGSQL.<port>`).
    Unix(String, u16),
}

impl std::fmt::Display for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Server::Tcp(host, port) if host.contains(':') => write!(f, "[{host}]:{port}"),
            Server::Tcp(host, port) => write!(f, "{host}:{port}"),
            Server::Unix(dir, port) => write!(f, "{dir}/.s.PGSQL.{port}"),
        }
    }
}

/// Judges the configuration and probes its servers.
pub async fn check(loaded: &Loaded, timeout: Duration) -> Outcome {
    let (config, problems) = match loaded {
        Loaded::NotGiven => return Outcome::skip("needs --config FILE"),
        Loaded::Unusable(problems) => return Outcome::new(Status::Fail, summarize(problems)),
        Loaded::Usable { config, problems } => (config, problems),
    };
    if !problems.is_empty() {
        return Outcome::new(Status::Fail, summarize(problems));
    }
    let servers = servers(config);
    if servers.is_empty() {
        return Outcome::new(
            Status::Warn,
            "valid, but [databases] is empty: every client gets \"no such database\"",
        );
    }
    let mut findings = Findings::default();
    let mut reachable = Vec::new();
    for (server, names) in &servers {
        match probe(server, timeout).await {
            Ok(()) => reachable.push(server.to_string()),
            Err(why) => findings.note(
                Status::Fail,
                format!("{server} (database {}): {why}", names.join(", ")),
            ),
        }
    }
    if !reachable.is_empty() {
        findings.note(
            Status::Pass,
            format!(
                "valid; servers accept connections: {}",
                reachable.join(", ")
            ),
        );
    }
    findings.outcome()
}

/// `file:line: message` of the first problems, then how many more there are.
fn summarize(problems: &[crate::config::ConfigError]) -> String {
    let mut text = format!(
        "{} problem{}: ",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    let shown: Vec<String> = problems
        .iter()
        .take(SHOWN_PROBLEMS)
        .map(ToString::to_string)
        .collect();
    text.push_str(&shown.join("; "));
    if problems.len() > SHOWN_PROBLEMS {
        text.push_str(&format!(" … and {} more", problems.len() - SHOWN_PROBLEMS));
    }
    text
}

/// Each distinct server of `[databases]` with the database names that use it.
pub fn servers(config: &Config) -> BTreeMap<Server, Vec<String>> {
    let socket_dir = config
        .pgbouncer
        .text(Key::UnixSocketDir)
        .unwrap_or("/tmp")
        .to_owned();
    let mut servers: BTreeMap<Server, Vec<String>> = BTreeMap::new();
    for (name, db) in &config.databases {
        let port = db.target.port;
        // PgBouncer: no host means the Unix socket in its own unix_socket_dir; a comma list
        // names alternatives, each of which may serve the database.
        let hosts: Vec<String> = match &db.target.host {
            None => vec![socket_dir.clone()],
            Some(hosts) => hosts
                .split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect(),
        };
        for host in hosts {
            let server = if host.starts_with('/') {
                Server::Unix(host, port)
            } else {
                Server::Tcp(host, port)
            };
            servers.entry(server).or_default().push(name.clone());
        }
    }
    servers
}

/// Resolves and connects to `server` within `timeout`; the error says which step failed.
async fn probe(server: &Server, timeout: Duration) -> Result<(), String> {
    let late = |what: &str| format!("{what} took longer than {}", seconds(timeout));
    match server {
        Server::Unix(dir, port) => {
            let path = format!("{dir}/.s.PGSQL.{port}");
            match tokio::time::timeout(timeout, tokio::net::UnixStream::connect(&path)).await {
                Err(_) => Err(late("connecting")),
                Ok(Err(e)) => Err(format!("cannot connect: {e}")),
                Ok(Ok(_)) => Ok(()),
            }
        }
        Server::Tcp(host, port) => {
            let lookup = tokio::net::lookup_host((host.as_str(), *port));
            let addrs: Vec<std::net::SocketAddr> = match tokio::time::timeout(timeout, lookup).await
            {
                Err(_) => return Err(late("resolving")),
                Ok(Err(e)) => return Err(format!("does not resolve: {e}")),
                Ok(Ok(addrs)) => addrs.collect(),
            };
            let mut last = "resolves to no address".to_owned();
            for addr in addrs {
                match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
                    Err(_) => last = late("connecting"),
                    Ok(Err(e)) => last = format!("refuses TCP: {e}"),
                    Ok(Ok(_)) => return Ok(()),
                }
            }
            Err(last)
        }
    }
}

fn seconds(d: Duration) -> String {
    crate::cli::units::seconds(d.as_secs_f64())
}

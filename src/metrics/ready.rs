//! `/readyz`: ready while the pooler accepts clients (running, not paused or suspended, under
//! `max_client_conn`) and at least one database's server answers a TCP (or unix socket) connect.
//! The connect is what service monitors do to PostgreSQL and it logs nothing there; its answer is
//! kept for a second so a busy prober cannot turn into a connect storm.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::admin::Host;
use crate::config::{Config, Key};
use crate::shutdown::Phase;

/// How long a reachability answer is reused.
const CACHE_FOR: Duration = Duration::from_secs(1);
/// How long one connect may take before that server counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The last reachability answer.
#[derive(Default)]
pub struct Readiness {
    last: std::sync::Mutex<Option<(Instant, Result<(), String>)>>,
}

/// Where a server listens.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Tcp(String, u16),
    Unix(String),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(host, port) => write!(f, "{host}:{port}"),
            Target::Unix(path) => f.write_str(path),
        }
    }
}

impl Readiness {
    /// `Ok` when ready, else why not.
    pub async fn check(&self, host: &dyn Host) -> Result<(), String> {
        accepting(host)?;
        if let Some((at, answer)) = self.cached() {
            if at.elapsed() < CACHE_FOR {
                return answer;
            }
        }
        let answer = reachable(targets(&host.config())).await;
        *self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((Instant::now(), answer.clone()));
        answer
    }

    fn cached(&self) -> Option<(Instant, Result<(), String>)> {
        self.last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

/// Whether a new client would be let in and served now.
fn accepting(host: &dyn Host) -> Result<(), String> {
    match host.shutdown().phase() {
        Phase::Running => {}
        phase => return Err(format!("shutting down ({phase:?})")),
    }
    let controls = &host.pools().controls;
    if controls.is_suspended() {
        return Err("suspended (SUSPEND)".to_owned());
    }
    if controls.all_paused() {
        return Err("paused (PAUSE)".to_owned());
    }
    let max = host.config().pgbouncer.int(Key::MaxClientConn);
    if usize::try_from(max).is_ok_and(|max| host.client_count() >= max) {
        return Err(format!("max_client_conn ({max}) reached"));
    }
    Ok(())
}

/// Every server address of `[databases]` (comma lists split; no host = the unix socket).
fn targets(config: &Config) -> Vec<Target> {
    let socket_dir = config
        .pgbouncer
        .text(Key::UnixSocketDir)
        .filter(|d| !d.is_empty());
    let mut out: Vec<Target> = config
        .databases
        .values()
        .flat_map(|db| {
            let port = db.target.port;
            let hosts: Vec<String> = match &db.target.host {
                Some(list) => list.split(',').map(|h| h.trim().to_owned()).collect(),
                None => vec![socket_dir.unwrap_or("127.0.0.1").to_owned()],
            };
            hosts.into_iter().filter(|h| !h.is_empty()).map(move |h| {
                if h.starts_with('/') {
                    Target::Unix(format!("{h}/.s.PGSQL.{port}"))
                } else {
                    Target::Tcp(h, port)
                }
            })
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// `Ok` as soon as one target accepts a connection.
async fn reachable(targets: Vec<Target>) -> Result<(), String> {
    if targets.is_empty() {
        return Err("no databases configured".to_owned());
    }
    let names: Vec<String> = targets.iter().map(ToString::to_string).collect();
    let mut probes = JoinSet::new();
    for target in targets {
        probes.spawn(async move { tokio::time::timeout(CONNECT_TIMEOUT, connect(&target)).await });
    }
    while let Some(done) = probes.join_next().await {
        if matches!(done, Ok(Ok(Ok(())))) {
            probes.abort_all();
            return Ok(());
        }
    }
    Err(format!("no server reachable ({})", names.join(", ")))
}

async fn connect(target: &Target) -> std::io::Result<()> {
    match target {
        Target::Tcp(host, port) => tokio::net::TcpStream::connect((host.as_str(), *port))
            .await
            .map(drop),
        Target::Unix(path) => tokio::net::UnixStream::connect(path).await.map(drop),
    }
}

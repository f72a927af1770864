//! `serve`: the pooler's command line, flags compatible with `pgbouncer` (DESIGN.md §1), and the
//! one place that wires config, pools, listeners, signals and logging together.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use super::{output, pidfile};
use crate::FastMap;
use crate::admin;
use crate::config::userlist::Secret;
use crate::config::{Config, ConfigError, Key, ProcessEnv, Source};
use crate::pool::{Forgotten, UnusedLimits};
use crate::proxy::listen::Listeners;
use crate::proxy::{Runtime, Shared, handshake};
use crate::shutdown::{Phase, Shutdown};
use crate::tls::TlsSettings;

/// Arguments of `bouncectl serve`.
#[derive(Debug, clap::Args)]
#[command(
    disable_version_flag = true,
    after_help = "Examples:\n  \
    bouncectl serve                           # 127.0.0.1:6432 → $PGHOST:$PGPORT, passwords checked by PostgreSQL\n  \
    bouncectl serve /etc/pgbouncer/pgbouncer.ini --check-config\n  \
    bouncectl serve --print-config            # the embedded default, every key shown\n  \
    PG_PASSWORD=... bouncectl serve pgbouncer.ini\n\n\
    Values may use ${NAME} to read the environment ($$ is a literal $).\n\
    Signals: HUP reload · INT safe shutdown · TERM wait for clients (twice: now) · QUIT now."
)]
pub struct Args {
    /// A pgbouncer.ini (PgBouncer's format); without it, the embedded default.
    #[arg(value_name = "CONFIG")]
    pub config: Option<PathBuf>,
    /// Run in the background (needs pidfile in the configuration).
    #[arg(short = 'd', long)]
    pub daemon: bool,
    /// Log nothing to stderr.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// More log output (repeat for more).
    #[arg(short = 'v', long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print the version as SHOW VERSION answers it (PgBouncer-shaped, naming bouncectl) and exit.
    #[arg(short = 'V', long)]
    pub version: bool,
    /// Read and check the configuration, print every problem as file:line: message, and exit
    /// (0 when valid, 2 otherwise).
    #[arg(long)]
    pub check_config: bool,
    /// Print the effective settings as a pgbouncer.ini (defaults included, passwords masked)
    /// and exit.
    #[arg(long)]
    pub print_config: bool,
}

/// Runs `serve`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.version {
        output::print_text(&format!("{}\n", crate::admin::version_text()))?;
        return Ok(ExitCode::SUCCESS);
    }
    let config = match load(args.config.as_deref()) {
        Ok(config) => config,
        Err(problems) => {
            for problem in &problems {
                eprintln!("{problem}");
            }
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    if args.print_config {
        output::print_text(&config.to_ini())?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.check_config {
        if !args.quiet {
            // Not problems (the exit stays 0): what a PgBouncer file asks that bouncectl ignores.
            for warning in config.inert_warnings() {
                eprintln!("{warning}");
            }
            eprintln!("{}: configuration is valid", config.source);
        }
        return Ok(ExitCode::SUCCESS);
    }
    handshake::supported(&config).map_err(super::usage)?;
    let users = load_users(&config).map_err(super::usage)?;
    // Before the fork, so that `-d` fails where its caller sees it.
    if let Some(path) = config.pgbouncer.text(Key::Pidfile) {
        pidfile::check(Path::new(path)).map_err(super::usage)?;
    }
    if args.daemon {
        daemonize(&config)?;
    }
    let logging = super::logging::init(&config, args.verbose, args.quiet || args.daemon)?;
    super::fdlimit::check(&config, users.len());
    let result = build_runtime(worker_threads_from_env())
        .and_then(|runtime| runtime.block_on(serve(config, users, args.config, logging.clone())));
    if let Err(e) = &result {
        logging.fatal(e);
    }
    result
}

/// The multi-threaded runtime: one worker per core unless `threads` says otherwise.
fn build_runtime(threads: Option<usize>) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n);
    }
    // Fixed at tokio's former default: the self-tuned interval costs clock reads and a `powf`
    // at every batch of tasks (vendor/README.md).
    builder.global_queue_interval(GLOBAL_QUEUE_INTERVAL);
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Tasks a worker runs from its own queue between looks at the shared one.
const GLOBAL_QUEUE_INTERVAL: u32 = 61;

/// `BOUNCECTL_WORKER_THREADS`. A value that is not a whole number over 0 is ignored with a
/// warning, not an error: it only tunes.
fn worker_threads_from_env() -> Option<usize> {
    let text = std::env::var("BOUNCECTL_WORKER_THREADS").ok()?;
    let threads = text.trim().parse::<usize>().ok().filter(|n| *n > 0);
    if threads.is_none() {
        tracing::warn!("BOUNCECTL_WORKER_THREADS={text} ignored: expected a whole number over 0");
    }
    threads
}

fn load(path: Option<&Path>) -> Result<Config, Vec<ConfigError>> {
    match path {
        Some(path) => Config::load(path, &ProcessEnv),
        None => Config::embedded_default(&ProcessEnv),
    }
}

pub use crate::proxy::reload::load_users;

fn daemonize(config: &Config) -> anyhow::Result<()> {
    if config.pgbouncer.text(Key::Pidfile).is_none() {
        return Err(super::usage(
            "-d needs pidfile in the configuration (as PgBouncer)",
        ));
    }
    nix::unistd::daemon(true, false).context("cannot daemonize")?;
    Ok(())
}

async fn serve(
    config: Config,
    users: FastMap<String, Secret>,
    path: Option<PathBuf>,
    logging: super::logging::Logging,
) -> anyhow::Result<ExitCode> {
    // Handlers go in before the first socket opens: a SIGHUP right after start must reload, not kill.
    let signals = Signals::install().context("cannot install signal handlers")?;
    let server = Server::start(config, users, None)
        .await
        .map_err(super::usage)?;
    // SIGHUP and RELOAD reopen the logfile (logrotate) and apply a changed log_format.
    server
        .shared
        .on_reload(Box::new(move |config| logging.apply(config)));
    let pidfile = server
        .shared
        .config()
        .pgbouncer
        .text(Key::Pidfile)
        .map(PathBuf::from);
    if let Some(path) = &pidfile {
        pidfile::write(path).with_context(|| format!("cannot write pidfile {}", path.display()))?;
    }
    if let Some(user) = server.shared.config().pgbouncer.text(Key::User) {
        change_user(user).map_err(super::usage)?;
    }
    tokio::spawn(signals.run(Arc::clone(&server.shared), path));
    server.wait().await;
    if let Some(path) = &pidfile {
        pidfile::remove(path);
    }
    Ok(ExitCode::SUCCESS)
}

/// A running pooler: what tests start in-process and `serve` runs until shutdown.
pub struct Server {
    /// The state shared with every client task.
    pub shared: Arc<Shared>,
    /// The TCP addresses bound.
    pub addrs: Vec<std::net::SocketAddr>,
    /// The metrics endpoint, when `metrics_listen` is set.
    pub metrics: Option<crate::metrics::Endpoint>,
    accept: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Binds (`port` overrides listen_port; 0 picks a free port) and starts accepting.
    pub async fn start(
        config: Config,
        users: FastMap<String, Secret>,
        port: Option<u16>,
    ) -> Result<Server, String> {
        let tls = TlsSettings::from_config(&config).map_err(|e| format!("TLS: {e}"))?;
        let hba = crate::proxy::reload::load_hba(&config)?;
        let listeners = Listeners::bind(&config, port)
            .await
            .map_err(|e| e.to_string())?;
        let addrs = listeners.local_addrs();
        announce(&config, &addrs);
        for line in config.inert_settings() {
            tracing::warn!("{line} has no effect in bouncectl");
        }
        let runtime = Runtime {
            config: Arc::new(config),
            users: Arc::new(users),
            tls: Arc::new(tls),
            hba: Arc::new(hba),
        };
        let shared = Arc::new(Shared::new(runtime, Shutdown::new()).map_err(|e| e.to_string())?);
        let host: Arc<dyn admin::Host> = Arc::clone(&shared) as Arc<dyn admin::Host>;
        // Bound before the pooler accepts anyone, so a bad metrics_listen fails the start.
        let metrics = match shared.config().pgbouncer.metrics_listen() {
            Some(listen) => Some(
                crate::metrics::Endpoint::start(listen, Arc::clone(&host))
                    .await
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let accept = tokio::spawn(listeners.serve(Arc::clone(&shared)));
        tokio::spawn(janitor(Arc::clone(&shared)));
        tokio::spawn(nudge_idle_clients(Arc::clone(&shared)));
        tokio::spawn(admin::ticker::run(host));
        Ok(Server {
            shared,
            addrs,
            metrics,
            accept,
        })
    }

    /// Waits until shutdown has run its course: listeners closed and, unless immediate, every
    /// client gone.
    pub async fn wait(self) {
        let _ = self.accept.await;
        let mut phase = self.shared.shutdown.subscribe();
        while self.shared.client_count() > 0 && *phase.borrow() != Phase::Immediate {
            let _ = tokio::time::timeout(Duration::from_millis(50), phase.changed()).await;
        }
        for pool in self.shared.registry.pools() {
            for server in pool.queue.close() {
                pool.close(server, crate::pool::reasons::SHUTDOWN);
            }
        }
        // Scrapes keep working while clients drain; the endpoint goes last.
        if let Some(metrics) = self.metrics {
            metrics.stop().await;
        }
        tracing::info!("shutdown complete");
    }
}

fn announce(config: &Config, addrs: &[std::net::SocketAddr]) {
    let listen: Vec<String> = addrs.iter().map(ToString::to_string).collect();
    let listen = listen.join(", ");
    if config.source == Source::Embedded {
        let target = config
            .database("*")
            .map(|d| {
                format!(
                    "{}:{}",
                    d.target.host.clone().unwrap_or_default(),
                    d.target.port
                )
            })
            .unwrap_or_default();
        tracing::info!(
            "listening on {listen} with the embedded default: every database is pooled to {target} in \
             transaction mode, and each client's password is checked by PostgreSQL itself (passthrough auth, no userlist)"
        );
    } else {
        tracing::info!("listening on {listen} ({})", config.source);
    }
}

async fn janitor(shared: Arc<Shared>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut phase = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                crate::registry::resync_wall_clock();
                shared.logins.expire(tokio::time::Instant::now());
                shared.registry.close_expired();
                shared.registry.fill_min();
                nudge_queued(&shared);
                forget_unused(&shared);
            }
            r = phase.changed() => if r.is_err() || *phase.borrow() == Phase::Immediate { return },
        }
    }
}

/// `query_wait_notify`: clients queued that long are woken to tell their client why.
fn nudge_queued(shared: &Shared) {
    let notify = shared.config().pgbouncer.int(Key::QueryWaitNotify);
    let Ok(secs) = u64::try_from(notify) else {
        return;
    };
    if secs > 0 {
        let now = crate::registry::wall_us(std::time::Instant::now());
        shared
            .registry_clients
            .nudge_queued_since(now.saturating_sub(secs * 1_000_000));
    }
}

/// `pool_idle_timeout` and `autodb_idle_timeout`: unused pools, and databases the `*` entry
/// made, are forgotten.
fn forget_unused(shared: &Shared) {
    let config = shared.config();
    let s = &config.pgbouncer;
    let limits = UnusedLimits {
        pool: s.duration(Key::PoolIdleTimeout),
        // Only while `*` is there to make them again.
        auto_database: match config.databases.contains_key("*") {
            true => s.duration(Key::AutodbIdleTimeout),
            false => Duration::ZERO,
        },
    };
    let is_auto = |db: &str| !config.databases.contains_key(db);
    for gone in shared.registry.forget_unused(limits, is_auto) {
        match gone {
            Forgotten::Pool(db, user) => {
                tracing::info!(database = %db, user = %user, "pool unused for pool_idle_timeout: freed");
            }
            Forgotten::AutoDatabase(db) => {
                tracing::info!(database = %db, "auto-database unused for autodb_idle_timeout: dropped");
            }
        }
    }
}

/// `user`: once the sockets, the logfile and the pidfile are open, runs on as that OS user.
/// As PgBouncer, only root can switch, and already being that user is no error. A reload then
/// reads its files as that user.
fn change_user(name: &str) -> Result<(), String> {
    use nix::unistd::{User, geteuid, initgroups, setgid, setuid};
    let user = User::from_name(name)
        .map_err(|e| format!("user = {name}: cannot look it up: {e}"))?
        .ok_or_else(|| format!("user = {name}: no such user"))?;
    let me = geteuid();
    if me == user.uid {
        return Ok(());
    }
    if !me.is_root() {
        return Err(format!(
            "user = {name}: only root can change to another user (running as uid {me})"
        ));
    }
    let cname = std::ffi::CString::new(name).map_err(|e| format!("user = {name}: {e}"))?;
    // Groups first: once the uid is dropped, they can no longer be changed.
    initgroups(&cname, user.gid)
        .and_then(|()| setgid(user.gid))
        .and_then(|()| setuid(user.uid))
        .map_err(|e| format!("user = {name}: cannot change to it: {e}"))?;
    tracing::info!("running as user {name} (uid {})", user.uid);
    Ok(())
}

/// SIGINT: sessions holding no server wait on their own wake-up, not on the shutdown channel
/// (cheaper per request), so each is woken once to see the phase and close.
async fn nudge_idle_clients(shared: Arc<Shared>) {
    let mut phase = shared.shutdown.subscribe();
    if phase
        .wait_for(|p| *p >= Phase::WaitForServers)
        .await
        .is_ok()
    {
        for client in shared.registry_clients.snapshot() {
            client.nudge();
        }
    }
}

struct Signals {
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    quit: tokio::signal::unix::Signal,
    usr1: tokio::signal::unix::Signal,
    usr2: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            quit: signal(SignalKind::quit())?,
            usr1: signal(SignalKind::user_defined1())?,
            usr2: signal(SignalKind::user_defined2())?,
        })
    }

    async fn run(mut self, shared: Arc<Shared>, path: Option<PathBuf>) {
        loop {
            tokio::select! {
                _ = self.hup.recv() => reload(&shared, path.as_deref()),
                _ = self.usr1.recv() => control(&shared, admin::AdminCommand::Pause(None)),
                _ = self.usr2.recv() => control(&shared, admin::AdminCommand::Resume(None)),
                _ = self.int.recv() => {
                    tracing::info!("got SIGINT, shutting down safely (waiting for servers to be released)");
                    shared.shutdown.advance(Phase::WaitForServers);
                }
                _ = self.term.recv() => {
                    if shared.shutdown.phase() == Phase::Running {
                        tracing::info!("got SIGTERM, waiting for clients to disconnect (send again to stop now)");
                        shared.shutdown.advance(Phase::WaitForClients);
                    } else {
                        tracing::info!("got SIGTERM again, shutting down immediately");
                        shared.shutdown.advance(Phase::Immediate);
                    }
                }
                _ = self.quit.recv() => {
                    tracing::info!("got SIGQUIT, shutting down immediately");
                    shared.shutdown.advance(Phase::Immediate);
                }
            }
        }
    }
}

/// SIGUSR1/SIGUSR2: the console's PAUSE/RESUME, run in the background (PAUSE waits for servers).
fn control(shared: &Arc<Shared>, cmd: admin::AdminCommand) {
    tracing::info!("got {cmd:?} signal");
    let host: Arc<dyn admin::Host> = Arc::clone(shared) as Arc<dyn admin::Host>;
    tokio::spawn(async move {
        if let Err(e) = admin::control::run(host.as_ref(), cmd).await {
            tracing::warn!("{}", e.message);
        }
    });
}

/// SIGHUP: re-reads the file and the userlist; on any problem the old configuration stays.
pub fn reload(shared: &Shared, path: Option<&Path>) {
    if path.is_none() && shared.config().source == Source::Embedded {
        tracing::info!("reload: running on the embedded default, nothing to re-read");
        return;
    }
    // Errors are logged by the reload itself; the old configuration stays.
    let _ = crate::proxy::reload::reload(shared);
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn workers_do_not_time_their_batches() {
        // Upstream tokio times every batch of tasks, which shows as busy time; the vendored
        // copy does not once the global queue interval is fixed (vendor/README.md, change 3).
        let runtime = super::build_runtime(Some(2)).expect("runtime");
        runtime.block_on(async {
            for _ in 0..200 {
                let task = tokio::spawn(async {
                    std::thread::sleep(Duration::from_micros(50));
                    tokio::task::yield_now().await;
                });
                task.await.expect("task");
            }
        });
        let metrics = runtime.metrics();
        let busy: Duration = (0..metrics.num_workers())
            .map(|w| metrics.worker_total_busy_duration(w))
            .sum();
        assert_eq!(busy, Duration::ZERO, "workers timed their batches");
    }

    #[test]
    fn timers_fire_on_time_as_they_are_added_moved_and_dropped() {
        // The vendored time driver keeps the wheel's next expiration until a timer changes
        // (vendor/README.md, change 5). A change it missed would hold a timer back until the
        // far one (5 s): each kind runs alone beside it, and every timer must fire at its
        // deadline, never before, and well before that.
        use tokio::time::{Instant, sleep, sleep_until};
        const SLACK: Duration = Duration::from_millis(400);
        let runtime = super::build_runtime(Some(2)).expect("runtime");
        runtime.block_on(async {
            let far = tokio::spawn(sleep(Duration::from_secs(5)));
            tokio::task::yield_now().await;
            for kind in 0..3 {
                let mut timers = tokio::task::JoinSet::new();
                for i in 0..20u64 {
                    // Deadlines spread over 5-300 ms, in no order.
                    let after = Duration::from_millis(5 + (i * 37) % 295);
                    timers.spawn(async move {
                        let due = Instant::now() + after;
                        match kind {
                            0 => sleep_until(due).await,
                            // Set late, then moved earlier: the wheel must see the new deadline.
                            1 => {
                                let timer = sleep(Duration::from_secs(4));
                                tokio::pin!(timer);
                                tokio::task::yield_now().await;
                                timer.as_mut().reset(due);
                                timer.await;
                            }
                            // Raced by a longer one, which is then dropped unfired.
                            _ => tokio::select! {
                                () = sleep_until(due) => {}
                                () = sleep(after + Duration::from_secs(3)) => {}
                            },
                        }
                        let now = Instant::now();
                        assert!(now >= due, "kind {kind}: fired {:?} early", due - now);
                        assert!(now - due < SLACK, "kind {kind}: fired {:?} late", now - due);
                    });
                }
                while let Some(done) = timers.join_next().await {
                    done.expect("timer task");
                }
            }
            far.abort();
        });
    }
}

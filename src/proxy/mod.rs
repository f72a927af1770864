//! The client side of the pooler: listeners (TCP and unix socket), one task per client through
//! handshake and relay, and the `Shared` handle every task gets.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod auth_query;
pub mod cancel;
pub mod client_auth;
pub mod console_login;
pub mod handshake;
pub mod hba;
pub mod listen;
pub mod login_deadlines;
pub mod params;
pub mod prepared;
pub mod reload;
pub mod session;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::Either;
use tokio::time::Instant;

use crate::FastMap;
use crate::config::userlist::Secret;
use crate::config::{Config, Database, Key};
use crate::pool::hosts::{Balance, HostList};
use crate::pool::queue::Limits;
use crate::pool::server::{LoginInfo, ServerCredential};
use crate::pool::{Pool, PoolRegistry, PoolSettings, PoolSpec};
use crate::registry::ClientRegistry;
use crate::shutdown::Shutdown;
use crate::tls::TlsSettings;

/// The configuration in force and the users of `auth_file`, swapped whole on reload.
#[derive(Debug, Clone)]
pub struct Runtime {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// `auth_file` entries by user name.
    pub users: Arc<FastMap<String, Secret>>,
    /// TLS toward clients and servers; a reload whose files are broken keeps the previous one.
    pub tls: Arc<TlsSettings>,
    /// `auth_hba_file` rules and `auth_ident_file` maps (empty unless `auth_type = hba`).
    pub hba: Arc<crate::config::hba::Hba>,
}

/// State every client task shares; built once by `serve`.
pub struct Shared {
    runtime: RwLock<Runtime>,
    /// Every pool.
    pub registry: PoolRegistry,
    /// Live clients' cancel keys.
    pub cancels: cancel::CancelMap,
    /// Cancels being forwarded to peers, each peer's at most its `pool_size` at once.
    pub peer_cancels: cancel::PeerCancels,
    /// Lifecycle phase.
    pub shutdown: Shutdown,
    /// Per-process key for mock SCRAM exchanges of unknown users.
    pub mock_key: [u8; 32],
    /// Logged-in clients, for the admin console.
    pub registry_clients: Arc<ClientRegistry>,
    /// Deadlines of logins in progress (`client_login_timeout`), swept by the janitor.
    pub logins: login_deadlines::LoginDeadlines,
    clients: AtomicUsize,
    client_ids: AtomicU64,
    per_db: std::sync::Mutex<FastMap<String, usize>>,
    per_user: std::sync::Mutex<FastMap<String, usize>>,
    on_reload: std::sync::OnceLock<ReloadHook>,
}

/// Run on every reload with the configuration in force afterwards (the log output's reopen).
pub type ReloadHook = Box<dyn Fn(&Config) + Send + Sync>;

/// A client counted against `max_db_client_connections` and `max_user_client_connections`
/// until dropped.
pub struct Admitted<'a> {
    shared: &'a Shared,
    client: Arc<crate::registry::ClientInfo>,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        for (map, name) in [
            (&self.shared.per_db, &self.client.database),
            (&self.shared.per_user, &self.client.user),
        ] {
            let mut counts = map
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = counts.get_mut(name.as_str()) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(name.as_str());
                }
            }
        }
    }
}

impl Shared {
    /// A handle for `runtime`, with a random mock key.
    pub fn new(runtime: Runtime, shutdown: Shutdown) -> Result<Self, getrandom::Error> {
        let mut mock_key = [0u8; 32];
        getrandom::getrandom(&mut mock_key)?;
        Ok(Shared {
            runtime: RwLock::new(runtime),
            registry: PoolRegistry::new(),
            cancels: cancel::CancelMap::default(),
            peer_cancels: cancel::PeerCancels::default(),
            shutdown,
            mock_key,
            registry_clients: Arc::new(ClientRegistry::default()),
            logins: login_deadlines::LoginDeadlines::default(),
            clients: AtomicUsize::new(0),
            client_ids: AtomicU64::new(1),
            per_db: std::sync::Mutex::new(FastMap::default()),
            per_user: std::sync::Mutex::new(FastMap::default()),
            on_reload: std::sync::OnceLock::new(),
        })
    }

    /// Sets what a reload runs besides re-reading the files (once; later calls are ignored).
    pub fn on_reload(&self, hook: ReloadHook) {
        let _ = self.on_reload.set(hook);
    }

    /// Runs the reload hook, if any, with `config`.
    pub fn run_reload_hook(&self, config: &Config) {
        if let Some(hook) = self.on_reload.get() {
            hook(config);
        }
    }

    fn runtime(&self) -> Runtime {
        self.read(Runtime::clone)
    }

    /// Runs `f` under the read lock; a poisoned lock still holds a whole Runtime.
    fn read<T>(&self, f: impl FnOnce(&Runtime) -> T) -> T {
        f(&self
            .runtime
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    // Each accessor clones just its own Arc: these run several times per login, and every
    // clone and drop is an atomic on a cache line that all cores share.

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.read(|r| Arc::clone(&r.config))
    }

    /// The `auth_file` users in force.
    pub fn users(&self) -> Arc<FastMap<String, Secret>> {
        self.read(|r| Arc::clone(&r.users))
    }

    /// The TLS settings in force.
    pub fn tls(&self) -> Arc<TlsSettings> {
        self.read(|r| Arc::clone(&r.tls))
    }

    /// `f` of the TLS settings in force, under the read lock: for a look that ends at once, it
    /// spares the clone and drop of [`Shared::tls`].
    pub fn with_tls<T>(&self, f: impl FnOnce(&TlsSettings) -> T) -> T {
        self.read(|r| f(&r.tls))
    }

    /// The `auth_hba_file` rules and `auth_ident_file` maps in force.
    pub fn hba(&self) -> Arc<crate::config::hba::Hba> {
        self.read(|r| Arc::clone(&r.hba))
    }

    /// Installs a new configuration (reload); existing pools take the new limits and TLS
    /// settings (for their next server logins).
    pub fn replace(&self, runtime: Runtime) {
        let config = Arc::clone(&runtime.config);
        let tls = Arc::clone(&runtime.tls);
        let old = std::mem::replace(
            &mut *self
                .runtime
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
            runtime,
        )
        .config;
        for pool in self.registry.pools() {
            let Some(db) = config.database(&pool.database) else {
                pool.set_tls(Arc::clone(&tls));
                continue;
            };
            pool.set_settings(pool_settings(&config, &pool.database, &pool.user, db));
            // A pool of a forced user the database no longer names serves only the clients it
            // has: it keeps logging in as before (user and password) until they leave.
            let orphaned = db.target.user.as_deref().is_some_and(|u| u != pool.user);
            if orphaned {
                pool.set_tls(Arc::clone(&tls));
            } else {
                pool.set_login(login_info(
                    &config,
                    &pool.database,
                    &pool.user,
                    db,
                    Arc::clone(&tls),
                    self.registry.dns(),
                ));
            }
            if old
                .database(&pool.database)
                .is_some_and(|was| retargeted(&old, was, &config, db))
            {
                pool.retarget();
            }
        }
    }

    /// Counts a logged-in client against its database's and user's client caps (0 = no cap).
    pub fn admit(
        &self,
        config: &Config,
        client: &Arc<crate::registry::ClientInfo>,
    ) -> Result<Admitted<'_>, crate::error::ClientError> {
        let (database, user) = (client.database.as_str(), client.user.as_str());
        let s = &config.pgbouncer;
        let db_cap = config
            .databases
            .get(database)
            .and_then(|d| d.pool.max_db_client_connections)
            .map_or_else(|| s.int(Key::MaxDbClientConnections), i64::from);
        let user_cap = config
            .users
            .get(user)
            .and_then(|u| u.max_user_client_connections)
            .map_or_else(|| s.int(Key::MaxUserClientConnections), i64::from);
        let mut dbs = self
            .per_db
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut users = self
            .per_user
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let db_now = dbs.get(database).copied().unwrap_or(0);
        let user_now = users.get(user).copied().unwrap_or(0);
        if db_cap > 0 && db_now >= count(db_cap) {
            return Err(crate::error::ClientError::ClientCapExceeded(true));
        }
        if user_cap > 0 && user_now >= count(user_cap) {
            return Err(crate::error::ClientError::ClientCapExceeded(false));
        }
        // A name already counted costs no allocation (`entry` would take an owned key).
        for (counts, name) in [(&mut dbs, database), (&mut users, user)] {
            match counts.get_mut(name) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(name.to_owned(), 1);
                }
            }
        }
        Ok(Admitted {
            shared: self,
            client: Arc::clone(client),
        })
    }

    /// Where and how a pool for `database` would log in as `server_user` (the secret is left to
    /// the caller).
    pub fn login_info(
        &self,
        config: &Config,
        database: &str,
        server_user: &str,
        db: &Database,
    ) -> LoginInfo {
        login_info(
            config,
            database,
            server_user,
            db,
            self.tls(),
            self.registry.dns(),
        )
    }

    /// Clients connected now.
    pub fn client_count(&self) -> usize {
        self.clients.load(Ordering::Relaxed)
    }

    /// How client SCRAM exchanges make up salts: the mock key and `scram_iterations`.
    pub fn scram<'a>(&'a self, config: &Config) -> client_auth::ScramPolicy<'a> {
        client_auth::ScramPolicy {
            mock_key: &self.mock_key,
            iterations: u32::try_from(config.pgbouncer.int(Key::ScramIterations))
                .unwrap_or(crate::auth::scram::DEFAULT_ITERATIONS),
        }
    }

    /// The pool for a client of `database` as `user`; created on first use.
    pub fn pool_for(
        &self,
        config: &Config,
        database: &str,
        user: &str,
        db: &Database,
    ) -> Arc<Pool> {
        let server_user = db.target.user.as_deref().unwrap_or(user);
        self.registry
            .get_or_create(database, server_user, || PoolSpec {
                settings: pool_settings(config, database, user, db),
                login: self.login_info(config, database, server_user, db),
                max_db_connections: count(
                    db.pool
                        .max_db_connections
                        .map_or_else(|| config.pgbouncer.int(Key::MaxDbConnections), i64::from),
                ),
                max_user_connections: count(
                    config
                        .users
                        .get(user)
                        .and_then(|u| u.max_user_connections)
                        .map_or_else(|| config.pgbouncer.int(Key::MaxUserConnections), i64::from),
                ),
            })
    }
}

impl crate::admin::Host for Shared {
    fn config(&self) -> Arc<Config> {
        Shared::config(self)
    }

    fn peer_cancels(&self) -> Vec<(u16, usize, usize)> {
        self.peer_cancels.counts()
    }

    fn replace_config(&self, config: Config) {
        let Runtime {
            users, tls, hba, ..
        } = self.runtime();
        self.replace(Runtime {
            config: Arc::new(config),
            users,
            tls,
            hba,
        });
    }

    fn reload(&self) -> Result<(), String> {
        reload::reload(self)
    }

    fn pools(&self) -> &PoolRegistry {
        &self.registry
    }

    fn clients(&self) -> &ClientRegistry {
        &self.registry_clients
    }

    fn shutdown(&self) -> &Shutdown {
        &self.shutdown
    }

    fn client_count(&self) -> usize {
        Shared::client_count(self)
    }

    fn auth_users(&self) -> Vec<String> {
        self.users().keys().cloned().collect()
    }
}

fn count(v: i64) -> usize {
    usize::try_from(v).unwrap_or(0)
}

fn pool_settings(config: &Config, database: &str, user: &str, db: &Database) -> PoolSettings {
    let s = &config.pgbouncer;
    let user_cfg = config.users.get(user);
    let reserve = user_cfg
        .and_then(|u| u.reserve_pool_size)
        .or(db.pool.reserve_pool_size)
        .map_or_else(|| s.int(Key::ReservePoolSize), i64::from);
    let wait = user_cfg
        .and_then(|u| u.query_wait_timeout)
        .or(db.pool.query_wait_timeout)
        .unwrap_or_else(|| s.duration(Key::QueryWaitTimeout));
    // PgBouncer documents the default as `<empty>`: an empty query, the cheapest round trip.
    let check_query = s
        .text(Key::ServerCheckQuery)
        .filter(|q| *q != "<empty>")
        .unwrap_or_default()
        .to_owned();
    PoolSettings {
        mode: config.pool_mode_for(database, user),
        limits: Limits {
            pool_size: count(i64::from(config.pool_size_for(database, user))),
            reserve_size: count(reserve),
            reserve_timeout: s.duration(Key::ReservePoolTimeout),
            wait_timeout: (!wait.is_zero()).then_some(wait),
            round_robin: s.flag(Key::ServerRoundRobin),
        },
        server_lifetime: db
            .pool
            .server_lifetime
            .unwrap_or_else(|| s.duration(Key::ServerLifetime)),
        server_idle_timeout: s.duration(Key::ServerIdleTimeout),
        reset_query: s.text(Key::ServerResetQuery).unwrap_or_default().to_owned(),
        reset_query_always: s.flag(Key::ServerResetQueryAlways),
        check: Some((check_query, s.duration(Key::ServerCheckDelay))),
        min_pool_size: count(
            db.pool
                .min_pool_size
                .map_or_else(|| s.int(Key::MinPoolSize), i64::from),
        ),
        max_prepared_statements: count(s.int(Key::MaxPreparedStatements)),
        server_login_retry: s.duration(Key::ServerLoginRetry),
        log_connections: s.flag(Key::LogConnections),
        log_disconnections: s.flag(Key::LogDisconnections),
    }
}

/// Whether a reload moved a database to another server, by PgBouncer's rule: a new dbname,
/// host, port, forced user, connect_query, auth_dbname, auth_query or load_balance_hosts (or a
/// new unix_socket_dir for a database without a host). A new password alone keeps the servers.
fn retargeted(old: &Config, was: &Database, new: &Config, now: &Database) -> bool {
    let target = |t: &crate::config::database::Target| crate::config::database::Target {
        password: None,
        auth_user: None,
        ..t.clone()
    };
    let socket_dir = |c: &Config| c.pgbouncer.text(Key::UnixSocketDir).map(str::to_owned);
    target(&was.target) != target(&now.target)
        || (now.target.host.is_none() && socket_dir(old) != socket_dir(new))
}

fn login_info(
    config: &Config,
    database: &str,
    server_user: &str,
    db: &Database,
    tls: Arc<TlsSettings>,
    dns: &Arc<crate::pool::dns::DnsCache>,
) -> LoginInfo {
    let s = &config.pgbouncer;
    let host = db.target.host.clone().unwrap_or_else(|| {
        match s.text(Key::UnixSocketDir).filter(|d| !d.is_empty()) {
            Some(dir) => dir.to_owned(),
            None => "127.0.0.1".to_owned(),
        }
    });
    let mut params = Vec::new();
    let startup = &db.startup;
    for (name, value) in [
        ("client_encoding", &startup.client_encoding),
        ("datestyle", &startup.datestyle),
        ("timezone", &startup.timezone),
        ("application_name", &startup.application_name),
    ] {
        if let Some(v) = value {
            params.push((name.to_owned(), v.clone()));
        }
    }
    let balance = Balance::from_setting(db.target.load_balance_hosts.as_deref());
    LoginInfo {
        hosts: Arc::new(HostList::from_config(
            &host,
            db.target.port,
            &db.target.ports,
            balance,
        )),
        dbname: db
            .target
            .dbname
            .clone()
            .unwrap_or_else(|| database.to_owned()),
        user: server_user.to_owned(),
        credential: db
            .target
            .password
            .clone()
            .map_or(ServerCredential::None, ServerCredential::Password),
        params,
        connect_timeout: nonzero(
            s.duration(Key::ServerConnectTimeout),
            Duration::from_secs(15),
        ),
        connect_query: db.target.connect_query.clone(),
        tls,
        resolver: crate::pool::dns::Resolver {
            cache: Arc::clone(dns),
            ttl: crate::pool::dns::DnsTtl {
                found: s.duration(Key::DnsMaxTtl),
                failed: s.duration(Key::DnsNxdomainTtl),
            },
        },
        tcp: crate::net::TcpTuning::from_settings(s),
    }
}

fn nonzero(d: Duration, fallback: Duration) -> Duration {
    if d.is_zero() { fallback } else { d }
}

/// Runs `work` until `deadline` (none: to the end); `None` when the deadline came first.
///
/// Not an async fn: one would hold `work` twice, as its argument and inside the timeout, and
/// the futures given here (a relay write) sit in every client's task.
pub(crate) fn before<F: Future>(
    deadline: Option<Instant>,
    work: F,
) -> impl Future<Output = Option<F::Output>> {
    match deadline {
        Some(at) => Either::Left(tokio::time::timeout_at(at, work).map(Result::ok)),
        None => Either::Right(work.map(Some)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NoEnv;

    fn config(db: &str, extra: &str) -> Config {
        Config::parse_str(
            &format!("[databases]\napp = {db}\n[pgbouncer]\nauth_type = passthrough\n{extra}\n"),
            "t.ini",
            &NoEnv,
        )
        .unwrap()
    }

    fn moved(before: &Config, after: &Config) -> bool {
        let app = |c: &Config| c.database("app").cloned().unwrap();
        retargeted(before, &app(before), after, &app(after))
    }

    #[test]
    fn a_reload_retargets_only_when_the_server_changes() {
        let base = config("host=10.0.0.1 port=5432 dbname=a password=x", "");
        for (db, retarget) in [
            ("host=10.0.0.1 port=5432 dbname=a password=x", false),
            ("host=10.0.0.1 port=5432 dbname=a password=rotated", false),
            (
                "host=10.0.0.1 port=5432 dbname=a password=x pool_size=9",
                false,
            ),
            ("host=10.0.0.2 port=5432 dbname=a password=x", true),
            ("host=10.0.0.1 port=5433 dbname=a password=x", true),
            ("host=10.0.0.1 port=5432 dbname=b password=x", true),
            ("host=10.0.0.1 port=5432 dbname=a password=x user=u", true),
            (
                "host=10.0.0.1 port=5432 dbname=a password=x connect_query='SELECT 1'",
                true,
            ),
        ] {
            assert_eq!(moved(&base, &config(db, "")), retarget, "{db}");
        }
        let on_socket = config("dbname=a", "unix_socket_dir = /run/a");
        assert!(moved(
            &on_socket,
            &config("dbname=a", "unix_socket_dir = /run/b")
        ));
        assert!(!moved(
            &on_socket,
            &config(
                "dbname=a",
                "unix_socket_dir = /run/a\ndefault_pool_size = 7"
            )
        ));
    }
}

//! Server connection pools keyed by (database, user): checkout with FIFO waiting and limits,
//! login on demand, checkin or close on release, and the registry the proxy and admin console share.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

mod cap;
pub mod control;
pub mod dns;
pub mod hosts;
mod login;
pub mod queue;
pub mod reasons;
mod registry;
pub mod server;
pub mod statements;

pub use registry::{Forgotten, PoolRegistry, PoolSpec, UnusedLimits};

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use crate::FastMap;
use crate::config::PoolMode;
use crate::protocol::backend::TxStatus;
use crate::registry::{ServerInfo, ServerState};
use crate::stats::PoolStats;
use login::{Asker, MIN_RETRY};
use queue::{CheckoutError, Lease, Limits, Queue, Refusal};
use server::{LoginInfo, ServerConn, ServerCredential, ServerError};

/// Why a client could not get a server.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// Waiting for a connection took longer than allowed, or the pool closed.
    #[error(transparent)]
    Checkout(#[from] CheckoutError),
    /// Opening a new server connection failed.
    #[error(transparent)]
    Server(#[from] ServerError),
    /// A login failed less than `server_login_retry` ago and no server is up: clients fail fast
    /// with the cached error instead of queueing (PgBouncer's `check_fast_fail`).
    #[error("server login has been failing, cached error: {0} (server_login_retry)")]
    LoginFailing(String),
}

/// Per-pool settings resolved from the config (user → database → global precedence).
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// When a server goes back to the pool.
    pub mode: PoolMode,
    /// Size, reserve and wait limits.
    pub limits: Limits,
    /// `server_lifetime` (zero = unlimited).
    pub server_lifetime: Duration,
    /// `server_idle_timeout` (zero = unlimited).
    pub server_idle_timeout: Duration,
    /// `server_reset_query` (empty = none).
    pub reset_query: String,
    /// `server_reset_query_always`.
    pub reset_query_always: bool,
    /// `server_check_query` (empty: an empty query) and `server_check_delay`; `None` = no check.
    pub check: Option<(String, Duration)>,
    /// `min_pool_size`: server connections kept open even when idle.
    pub min_pool_size: usize,
    /// `max_prepared_statements`: per-server LRU size of tracked statements (0 = off).
    pub max_prepared_statements: usize,
    /// `server_login_retry`: how long a failed login keeps new ones from being tried.
    pub server_login_retry: Duration,
    /// `log_connections`: log each new server connection.
    pub log_connections: bool,
    /// `log_disconnections`: log each server close with its reason.
    pub log_disconnections: bool,
}

/// One (database, user) pool.
pub struct Pool {
    /// Database name as clients ask for it.
    pub database: String,
    /// User name as clients log in.
    pub user: String,
    /// The idle list and wait queue.
    pub queue: Arc<Queue<ServerConn>>,
    /// Traffic counters.
    pub stats: PoolStats,
    /// Pooler-wide names of the protocol-level prepared statements clients made.
    pub statements: statements::Registry,
    settings: Mutex<Arc<PoolSettings>>,
    hot: Hot,
    login: Mutex<LoginInfo>,
    welcome: Mutex<Option<Arc<Welcome>>>,
    server_ids: Arc<AtomicU64>,
    servers: Mutex<BTreeMap<u64, Arc<ServerInfo>>>,
    /// Where cancels for each logged-in server go, by server id.
    cancel_targets: Mutex<FastMap<u64, Arc<server::CancelTarget>>>,
    retry: hosts::LoginRetry,
    /// A `min_pool_size` fill runs for this pool (at most one at a time).
    filling: AtomicBool,
    /// Since when the janitor has found the pool without clients and servers.
    unused_since: Mutex<Option<Instant>>,
}

/// The settings every lease and release reads, mirrored in atomics: reading them takes no lock
/// and no reference count, which the other cores would feel on every transaction.
#[derive(Debug, Default)]
struct Hot {
    /// `server_lifetime` in µs, 0 = unlimited.
    lifetime_us: AtomicU64,
    /// `server_check_delay` in µs, `u64::MAX` = no check.
    check_delay_us: AtomicU64,
    /// `server_reset_query` is set and runs in every pool mode (`server_reset_query_always`).
    reset_always: AtomicBool,
    /// `server_reset_query` is set (session mode runs it).
    reset_session: AtomicBool,
    max_prepared: AtomicUsize,
}

impl Hot {
    fn set(&self, s: &PoolSettings) {
        let us = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.lifetime_us.store(us(s.server_lifetime), Relaxed);
        let check = s.check.as_ref().map_or(u64::MAX, |(_, delay)| us(*delay));
        self.check_delay_us.store(check, Relaxed);
        let reset = !s.reset_query.is_empty();
        self.reset_always
            .store(reset && s.reset_query_always, Relaxed);
        self.reset_session.store(reset, Relaxed);
        self.max_prepared.store(s.max_prepared_statements, Relaxed);
    }
}

/// What an idle server needs before a client may use it.
enum Fitness {
    Ready,
    /// Closed, for this reason (then the next one is tried).
    Close(&'static str),
    /// `server_check_query` first.
    Check,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here is a single read or assignment, so a poisoned lock is consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Pool {
    /// The pool's current settings (shared, so reading them on every release costs no copy).
    pub fn settings(&self) -> Arc<PoolSettings> {
        Arc::clone(&lock(&self.settings))
    }

    /// Replaces the settings (reload).
    pub fn set_settings(&self, settings: PoolSettings) {
        self.queue.set_limits(settings.limits);
        self.hot.set(&settings);
        *lock(&self.settings) = Arc::new(settings);
    }

    /// Whether a server released by a client in `mode` runs `server_reset_query` first.
    pub fn resets_after(&self, mode: PoolMode) -> bool {
        match mode {
            PoolMode::Session => self.hot.reset_session.load(Relaxed),
            _ => self.hot.reset_always.load(Relaxed),
        }
    }

    /// `max_prepared_statements` now.
    pub fn max_prepared_statements(&self) -> usize {
        self.hot.max_prepared.load(Relaxed)
    }

    /// Replaces the credential used for new server logins (passthrough learns it from a client).
    pub fn set_credential(&self, credential: ServerCredential) {
        lock(&self.login).credential = credential;
    }

    /// True when `credential` is the cleartext password new logins already use.
    pub fn credential_matches(&self, credential: &ServerCredential) -> bool {
        match (&lock(&self.login).credential, credential) {
            (ServerCredential::Password(a), ServerCredential::Password(b)) => {
                crate::auth::constant_time_eq(a.as_bytes(), b.as_bytes())
            }
            _ => false,
        }
    }

    /// Sets the credential and returns the previous one.
    pub fn swap_credential(&self, credential: ServerCredential) -> ServerCredential {
        std::mem::replace(&mut lock(&self.login).credential, credential)
    }

    /// Puts `previous` back unless another client replaced `attempted` meanwhile.
    pub fn restore_credential(&self, previous: ServerCredential, attempted: &ServerCredential) {
        let mut login = lock(&self.login);
        let unchanged = match (&login.credential, attempted) {
            (ServerCredential::Password(a), ServerCredential::Password(b)) => a == b,
            _ => false,
        };
        if unchanged {
            login.credential = previous;
        }
    }

    /// Replaces the `server_tls_*` settings new server logins use (reload).
    pub fn set_tls(&self, tls: Arc<crate::tls::TlsSettings>) {
        lock(&self.login).tls = tls;
    }

    /// Installs the login settings of a reloaded configuration for new server logins, keeping a
    /// credential learned from clients when the configuration names none.
    pub fn set_login(&self, mut login: LoginInfo) {
        let mut current = lock(&self.login);
        if matches!(login.credential, ServerCredential::None) {
            login.credential = current.credential.clone();
        }
        *current = login;
    }

    /// The database's server changed (PgBouncer's "dirty" database): every open server is
    /// marked close_needed and the idle ones close now, so clients move on as they get their
    /// next server; one in a transaction keeps its server until it releases it.
    pub fn retarget(&self) {
        tracing::info!(db = %self.database, user = %self.user, "server target changed, reconnecting");
        self.servers().iter().for_each(|s| s.mark_close_needed());
        self.close_idle(reasons::CONFIG_CHANGED);
        self.retry.succeeded();
        // New clients are greeted with the new server's parameters.
        *lock(&self.welcome) = None;
    }

    /// True when new server logins have a secret to answer with.
    pub fn has_credential(&self) -> bool {
        !matches!(lock(&self.login).credential, ServerCredential::None)
    }

    /// The ParameterStatus set of the pool's first server, replayed to new clients.
    pub fn welcome(&self) -> Option<Arc<Welcome>> {
        lock(&self.welcome).clone()
    }

    /// [`Pool::acquire`] without waiting: an idle server that needs nothing before use, taken
    /// at `now`. `None` sends the client the asynchronous way (no idle server, a login retry
    /// pending, or one to close or check first).
    pub fn try_acquire(&self, now: Instant) -> Option<ServerConn> {
        if self.retry.is_failing() {
            return None;
        }
        let server = self
            .queue
            .try_take_idle(|s| matches!(self.fitness(s, now), Fitness::Ready))?;
        server.set_active(now);
        Some(server)
    }

    /// What an idle server needs before a client may use it at `now`.
    fn fitness(&self, server: &ServerConn, now: Instant) -> Fitness {
        // Deadlines are compared, not ages computed: an addition is cheaper than a subtraction
        // of instants, and this runs on every lease.
        let reached = |since: Instant, us: u64| {
            since
                .checked_add(Duration::from_micros(us))
                .is_some_and(|at| now >= at)
        };
        let lifetime = self.hot.lifetime_us.load(Relaxed);
        if lifetime != 0 && reached(server.created, lifetime) {
            return Fitness::Close(reasons::LIFETIME);
        }
        if server.is_broken() {
            return Fitness::Close(reasons::CRASHED);
        }
        // server_check_delay: a connection idle this long proves itself first.
        if reached(server.last_used, self.hot.check_delay_us.load(Relaxed)) {
            return Fitness::Check;
        }
        Fitness::Ready
    }

    /// The janitor's look at the pool: since when it has had no client and no server, if so.
    /// Called under the registry's lock, where no login can pick the pool up: one the registry
    /// alone holds (strong count 1) has no client, and the count of open servers covers the rest.
    fn mark_unused(self: &Arc<Self>, now: Instant) -> Option<Instant> {
        let unused = Arc::strong_count(self) == 1 && self.queue.counts().open == 0;
        let mut since = lock(&self.unused_since);
        *since = match *since {
            _ if !unused => None,
            None => Some(now),
            kept => kept,
        };
        *since
    }

    /// Gets a server for a client: an idle one (checked for lifetime) or a new login.
    /// Returns it with the time the client waited.
    pub async fn acquire(&self, started: Instant) -> Result<(ServerConn, Instant), PoolError> {
        if self.retry.is_failing() {
            self.login_retry(Asker::New).await?;
        }
        let mut again = false;
        loop {
            let (lease, queued) = self.queue.checkout_since(started).await?;
            // One clock read for every age check of this lease; none when it came at once.
            let now = if again || queued {
                Instant::now()
            } else {
                started
            };
            again = true;
            match lease {
                Lease::Ready(mut server) => {
                    match self.fitness(&server, now) {
                        Fitness::Ready => {}
                        Fitness::Close(reason) => {
                            self.close(server, reason);
                            continue;
                        }
                        Fitness::Check => {
                            if let Some((query, _)) = &self.settings().check {
                                if self.own_query(&mut server, query).await.is_err() {
                                    self.close(server, reasons::CHECK_FAILED);
                                    continue;
                                }
                            }
                        }
                    }
                    server.set_active(now);
                    return Ok((server, now));
                }
                Lease::Open(slot) => {
                    // Boxed: a login (TLS, SCRAM) is rare next to a lease, and inline it would
                    // add its 2 KB to every waiting client's task.
                    let server = match Box::pin(self.open_for(started, queued)).await {
                        Ok(server) => server,
                        // PostgreSQL refused one more connection (its max_connections, the
                        // role's limit) while this pool has servers: as in PgBouncer, the client
                        // waits for one of them, and no new login is tried for
                        // server_login_retry. Held before the slot goes, so that it is not
                        // handed to the next waiter to fail the same way.
                        Err(PoolError::Server(e)) if self.servers_up() > 0 => {
                            let retry = self.settings().server_login_retry.max(MIN_RETRY);
                            self.queue.hold_opens(Instant::now() + retry);
                            drop((slot, e));
                            continue;
                        }
                        Err(e) => return Err(e),
                    };
                    slot.fill();
                    let now = Instant::now();
                    server.set_active(now);
                    return Ok((server, now));
                }
            }
        }
    }

    /// Runs one of the pooler's own queries (server_check_query, server_reset_query, the SETs
    /// that carry a client's parameters) on `server`, bounded by `server_connect_timeout`: a
    /// server that cannot answer in that long is as good as unreachable, and an unbounded wait
    /// here would hold its pool slot — and the client behind it — forever. On any error the
    /// connection is in an unknown state: the caller closes it.
    pub async fn own_query(&self, server: &mut ServerConn, sql: &str) -> Result<(), ServerError> {
        let limit = lock(&self.login).connect_timeout;
        tokio::time::timeout(limit, server.simple_query(sql))
            .await
            .map_err(|_| ServerError::Unresponsive)?
    }

    /// Gives a server back after a client is done with it: reused when it is idle and healthy,
    /// closed otherwise.
    pub fn release(&self, server: ServerConn) {
        self.release_at(server, Instant::now());
    }

    /// [`Pool::release`] for a server that became idle at `now` (the caller's clock read).
    pub fn release_at(&self, mut server: ServerConn, now: Instant) {
        let close_needed = server.info.as_ref().is_some_and(|s| s.close_needed());
        let reason = if server.tx_status != TxStatus::Idle {
            Some(reasons::NOT_READY)
        } else if !server.buf.is_empty() {
            Some(reasons::IN_PROGRESS)
        } else {
            close_needed.then_some(reasons::CONFIG_CHANGED)
        };
        if let Some(reason) = reason {
            self.close(server, reason);
            return;
        }
        server.last_used = now;
        server.set_state(ServerState::Idle);
        if let Err((server, why)) = self.queue.checkin_at(server, now) {
            let reason = match why {
                Refusal::Closed => reasons::SHUTDOWN,
                Refusal::OverSize => reasons::TOO_MANY,
                Refusal::Wanted => reasons::EVICTED,
            };
            self.close(server, reason);
        }
    }

    /// Closes a server connection and frees its slot.
    /// Closes `server` for `reason` (PgBouncer's wording, logged with `log_disconnections`).
    pub fn close(&self, server: ServerConn, reason: &str) {
        if self.settings().log_disconnections {
            tracing::info!(
                server = format_args!("S-{:#x}", server.id),
                db = %self.database,
                user = %self.user,
                addr = %server.addr,
                "closing because: {reason} (age={}s)",
                server.created.elapsed().as_secs()
            );
        }
        self.forget(server.id);
        self.queue.discard();
        tokio::spawn(server.terminate());
    }

    fn forget(&self, id: u64) {
        lock(&self.servers).remove(&id);
        lock(&self.cancel_targets).remove(&id);
    }

    /// Where a cancel for server `id` goes, while it is open.
    pub fn cancel_target(&self, id: u64) -> Option<Arc<server::CancelTarget>> {
        lock(&self.cancel_targets).get(&id).cloned()
    }

    /// The SHOW SERVERS entry of server `id`.
    pub fn server_info(&self, id: u64) -> Option<Arc<ServerInfo>> {
        lock(&self.servers).get(&id).cloned()
    }

    /// Every live server connection of this pool, by id.
    pub fn servers(&self) -> Vec<Arc<ServerInfo>> {
        lock(&self.servers).values().cloned().collect()
    }

    /// Marks server `id` as being in `state`.
    pub fn set_server_state(&self, id: u64, state: ServerState) {
        if let Some(info) = self.server_info(id) {
            info.set_state(state);
        }
    }

    /// Closes every idle server now (PAUSE, KILL, RECONNECT, a retargeting reload).
    pub fn close_idle(&self, reason: &str) {
        for server in self.queue.take_idle_where(|_, _| true) {
            self.close(server, reason);
        }
    }
}

impl queue::CapMember for Pool {
    fn oldest_idle(&self) -> Option<Instant> {
        self.queue.oldest_idle()
    }

    fn wants_room(&self) -> bool {
        self.queue.wants_room()
    }

    fn evict_oldest_idle(&self) -> bool {
        let Some(server) = self.queue.take_oldest_idle() else {
            return false;
        };
        self.close(server, reasons::EVICTED);
        true
    }
}

/// The parameters of a pool's first server, which every new client of the pool is shown and
/// keeps for the settings it did not choose, with a digest of them computed once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Welcome {
    /// Name → value, as the server reported them.
    pub params: BTreeMap<String, String>,
    /// `params` as ParameterStatus messages, one after another in the map's order: logins copy
    /// runs of these instead of encoding a dozen messages each.
    pub encoded: bytes::Bytes,
    /// Where each message of `encoded` ends, in the map's order (one that cannot be encoded
    /// takes no bytes).
    pub ends: Vec<usize>,
    /// A hash of `params`: clients fold it into their fingerprint instead of rehashing the map.
    pub digest: u64,
}

/// A hasher for the session-parameter fingerprints, keyed once per process at random: a client
/// choosing its own parameter values cannot aim for another client's fingerprint (and so be
/// handed a server still carrying that client's settings, with no `SET` in between).
pub fn fingerprint_hasher() -> std::collections::hash_map::DefaultHasher {
    use std::hash::BuildHasher as _;
    static KEYS: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    KEYS.get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher()
}

impl Welcome {
    /// The welcome of a server that reported `params`.
    pub fn new(params: BTreeMap<String, String>) -> Self {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = fingerprint_hasher();
        params.hash(&mut h);
        let mut encoded = bytes::BytesMut::new();
        let ends = params
            .iter()
            .map(|(name, value)| {
                // A failed builder leaves the buffer as it was: that message takes no bytes.
                let _ = crate::protocol::backend::parameter_status(&mut encoded, name, value);
                encoded.len()
            })
            .collect();
        Welcome {
            digest: h.finish(),
            encoded: encoded.freeze(),
            ends,
            params,
        }
    }
}

//! Every pool of the process, created on first use and keyed by (database, user), with the
//! per-database and per-user server caps they share and the janitor's sweeps over them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::control::Controls;
use super::queue::{CapMember, Queue, SharedCap};
use super::server::{LoginInfo, ServerConn};
use super::{Hot, Pool, PoolSettings, hosts, lock, reasons, statements};
use crate::FastMap;
use crate::stats::PoolStats;

/// Every pool, created on first use.
#[derive(Default)]
pub struct PoolRegistry {
    /// PAUSE/DISABLE state by database.
    pub controls: Controls,
    /// Pools by database, then user: looked up by borrowed names, so a login allocates no key.
    pools: Mutex<FastMap<String, FastMap<String, Arc<Pool>>>>,
    db_caps: Mutex<FastMap<String, Arc<SharedCap>>>,
    user_caps: Mutex<FastMap<String, Arc<SharedCap>>>,
    server_ids: Arc<AtomicU64>,
    dns: Arc<super::dns::DnsCache>,
}

/// What [`PoolRegistry::forget_unused`] let go.
#[derive(Debug, PartialEq, Eq)]
pub enum Forgotten {
    /// A (database, user) pool past `pool_idle_timeout`.
    Pool(String, String),
    /// A database the `*` entry made, past `autodb_idle_timeout`, with all its pools.
    AutoDatabase(String),
}

/// How long pools and auto-created databases may stay unused (zero: for ever).
#[derive(Debug, Clone, Copy, Default)]
pub struct UnusedLimits {
    /// `pool_idle_timeout`.
    pub pool: Duration,
    /// `autodb_idle_timeout`.
    pub auto_database: Duration,
}

/// What the registry needs to create a pool.
pub struct PoolSpec {
    /// Settings resolved for this (database, user).
    pub settings: PoolSettings,
    /// Where and how to log in.
    pub login: LoginInfo,
    /// `max_db_connections` of the database (0 = unlimited).
    pub max_db_connections: usize,
    /// `max_user_connections` of the user (0 = unlimited).
    pub max_user_connections: usize,
}

impl PoolRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        PoolRegistry {
            server_ids: Arc::new(AtomicU64::new(1)),
            ..Default::default()
        }
    }

    /// The server host names resolved lately (`dns_max_ttl`).
    pub fn dns(&self) -> &Arc<super::dns::DnsCache> {
        &self.dns
    }

    /// The pool for (database, user), created from `spec()` when missing.
    pub fn get_or_create(
        &self,
        database: &str,
        user: &str,
        spec: impl FnOnce() -> PoolSpec,
    ) -> Arc<Pool> {
        let mut pools = lock(&self.pools);
        if let Some(pool) = pools.get(database).and_then(|by_user| by_user.get(user)) {
            return Arc::clone(pool);
        }
        let spec = spec();
        let db_cap = Arc::clone(
            lock(&self.db_caps)
                .entry(database.to_owned())
                .or_insert_with(|| SharedCap::new(spec.max_db_connections)),
        );
        let user_cap = Arc::clone(
            lock(&self.user_caps)
                .entry(user.to_owned())
                .or_insert_with(|| SharedCap::new(spec.max_user_connections)),
        );
        let pool = Arc::new(Pool {
            database: database.to_owned(),
            user: user.to_owned(),
            queue: Queue::new(
                spec.settings.limits,
                vec![Arc::clone(&db_cap), Arc::clone(&user_cap)],
            ),
            stats: PoolStats::default(),
            statements: statements::Registry::default(),
            hot: {
                let hot = Hot::default();
                hot.set(&spec.settings);
                hot
            },
            settings: Mutex::new(Arc::new(spec.settings)),
            login: Mutex::new(spec.login),
            welcome: Mutex::new(None),
            server_ids: Arc::clone(&self.server_ids),
            servers: Mutex::new(BTreeMap::new()),
            cancel_targets: Mutex::new(FastMap::default()),
            retry: hosts::LoginRetry::default(),
            filling: AtomicBool::new(false),
            unused_since: Mutex::new(None),
        });
        pool.queue.set_paused(self.controls.is_paused(database));
        let member: Arc<dyn CapMember> = Arc::clone(&pool) as _;
        db_cap.join(Arc::downgrade(&member));
        user_cap.join(Arc::downgrade(&member));
        pools
            .entry(database.to_owned())
            .or_default()
            .insert(user.to_owned(), Arc::clone(&pool));
        pool
    }

    /// Every pool, ordered by (database, user).
    pub fn pools(&self) -> Vec<Arc<Pool>> {
        let mut all: Vec<_> = lock(&self.pools)
            .values()
            .flat_map(HashMap::values)
            .cloned()
            .collect();
        all.sort_by(|a, b| (&a.database, &a.user).cmp(&(&b.database, &b.user)));
        all
    }

    /// Starts opening connections up to `min_pool_size` for pools that know a credential (the
    /// janitor's job); failures are logged by the login and retried on the next tick. Each
    /// pool fills in its own task, one login at a time: a server that takes
    /// `server_connect_timeout` to fail delays neither the janitor nor other pools.
    pub fn fill_min(&self) {
        for pool in self.pools() {
            let min = pool.settings().min_pool_size;
            let missing = min.saturating_sub(pool.queue.counts().open);
            if missing == 0 || !pool.has_credential() || pool.filling.swap(true, Ordering::AcqRel) {
                continue;
            }
            tokio::spawn(async move {
                let _done = Filling(&pool.filling);
                for _ in 0..missing {
                    if !matches!(pool.open_spare().await, Ok(true)) {
                        break;
                    }
                }
            });
        }
    }

    /// Forgets pools, with their stats, that have had no client and no server for
    /// `pool_idle_timeout`, and databases made from the `*` entry (`is_auto`) whose pools all
    /// have been so for `autodb_idle_timeout`, as PgBouncer's janitor does. A paused database
    /// keeps its pools.
    pub fn forget_unused(
        &self,
        limits: UnusedLimits,
        is_auto: impl Fn(&str) -> bool,
    ) -> Vec<Forgotten> {
        let now = Instant::now();
        let past = |since: Option<Instant>, limit: Duration| {
            !limit.is_zero() && since.is_some_and(|s| now.saturating_duration_since(s) >= limit)
        };
        let mut forgotten = Vec::new();
        // Under the registry lock no login can pick a pool up (see [`Pool::mark_unused`]).
        let mut pools = lock(&self.pools);
        for (db, by_user) in pools.iter_mut() {
            let paused = self.controls.is_paused(db);
            // When the last of its pools fell unused; none while one is in use. Every pool is
            // marked, in use or not.
            let sinces: Vec<_> = by_user.values().map(|pool| pool.mark_unused(now)).collect();
            let db_since = match sinces.iter().all(Option::is_some) {
                true => sinces.into_iter().flatten().max(),
                false => None,
            };
            if paused {
                continue;
            }
            if is_auto(db) && past(db_since, limits.auto_database) {
                by_user.clear();
                forgotten.push(Forgotten::AutoDatabase(db.clone()));
                continue;
            }
            by_user.retain(|user, pool| {
                let expired = past(*lock(&pool.unused_since), limits.pool);
                if expired {
                    forgotten.push(Forgotten::Pool(db.clone(), user.clone()));
                }
                !expired
            });
        }
        pools.retain(|db, by_user| {
            let keep = !by_user.is_empty();
            if !keep {
                lock(&self.db_caps).remove(db);
            }
            keep
        });
        forgotten
    }

    /// Closes idle servers past `server_idle_timeout` or `server_lifetime` (the janitor's job).
    pub fn close_expired(&self) {
        for pool in self.pools() {
            let settings = pool.settings();
            // Idle connections beyond min_pool_size may time out; the first ones are kept.
            let mut keep = settings.min_pool_size;
            let lifetime_over = |server: &ServerConn| {
                !settings.server_lifetime.is_zero()
                    && server.created.elapsed() >= settings.server_lifetime
            };
            let expired = pool.queue.take_idle_where(|server, idle_for| {
                let idle_expired = !settings.server_idle_timeout.is_zero()
                    && idle_for >= settings.server_idle_timeout
                    && if keep > 0 {
                        keep -= 1;
                        false
                    } else {
                        true
                    };
                idle_expired || lifetime_over(server)
            });
            for server in expired {
                let reason = match lifetime_over(&server) {
                    true => reasons::LIFETIME,
                    false => reasons::IDLE_TIMEOUT,
                };
                pool.close(server, reason);
            }
        }
    }
}

/// Ends a pool's `min_pool_size` fill, also when its task is dropped.
struct Filling<'a>(&'a AtomicBool);

impl Drop for Filling<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

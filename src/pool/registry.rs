//! Every pool of the process, created on first use and keyed by (database, user), with the
//! per-database and per-user server caps they share and the janitor's sweeps over them.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::control::Controls;
use super::queue::{Queue, SharedCap};
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
    /// Auto-created databases with no client and no server, since when.
    unused_auto: Mutex<FastMap<String, Instant>>,
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
            queue: Queue::new(spec.settings.limits, vec![db_cap, user_cap]),
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
        });
        pool.queue.set_paused(self.controls.is_paused(database));
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
                    if pool.open_spare().await.is_err() {
                        break;
                    }
                }
            });
        }
    }

    /// Drops the pools of databases made from the `*` entry (`is_auto`) that have had no client
    /// and no server for `timeout` (`autodb_idle_timeout`; zero keeps them), as PgBouncer's
    /// janitor does; a paused database stays. Returns the names dropped.
    pub fn drop_unused_auto(
        &self,
        timeout: Duration,
        is_auto: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let mut unused = lock(&self.unused_auto);
        if timeout.is_zero() {
            unused.clear();
            return Vec::new();
        }
        let now = Instant::now();
        let mut pools = lock(&self.pools);
        // Under the registry lock no login can pick a pool up: one held by the registry alone
        // (strong count 1) has no client, and the count of open servers covers the rest.
        let in_use = |by_user: &FastMap<String, Arc<Pool>>| {
            by_user
                .values()
                .any(|pool| Arc::strong_count(pool) > 1 || pool.queue.counts().open > 0)
        };
        unused.retain(|db, _| pools.get(db).is_some_and(|by_user| !in_use(by_user)));
        let mut dropped = Vec::new();
        for (db, by_user) in pools.iter() {
            if !is_auto(db) || self.controls.is_paused(db) || in_use(by_user) {
                continue;
            }
            let since = *unused.entry(db.clone()).or_insert(now);
            if now.saturating_duration_since(since) >= timeout {
                dropped.push(db.clone());
            }
        }
        for db in &dropped {
            pools.remove(db);
            unused.remove(db);
            lock(&self.db_caps).remove(db);
        }
        dropped
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

//! Items 3, 5, 6 and 7: the ones that log in somewhere. PostgreSQL for its connection limit, the
//! pooler for a startup answer, the app's login and `SELECT 1` through the pooler. Every wait is
//! bounded by `--timeout`.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;

use super::{Inputs, Outcome, Status};
use crate::cli::admin_client::{self, Target};
use crate::cli::size;
use crate::config::{Config, Key};

/// Connects with `config` within `timeout`; the connection task is spawned.
pub(super) async fn connect(
    config: &tokio_postgres::Config,
    timeout: Duration,
) -> Result<tokio_postgres::Client, Failure> {
    match tokio::time::timeout(timeout, config.connect(tokio_postgres::NoTls)).await {
        Err(_) => Err(Failure::Timeout),
        Ok(Err(e)) => Err(Failure::Error(e)),
        Ok(Ok((client, connection))) => {
            tokio::spawn(async move {
                // Ends when the client is dropped; errors surface in the queries.
                let _ = connection.await;
            });
            Ok(client)
        }
    }
}

/// Why a connection attempt failed.
pub(super) enum Failure {
    /// No answer in time.
    Timeout,
    /// The client library's error (refused, a server error, …).
    Error(tokio_postgres::Error),
}

impl Failure {
    /// One line saying what to fix.
    pub(super) fn explain(
        &self,
        config: &tokio_postgres::Config,
        target: Target,
        timeout: Duration,
    ) -> String {
        match self {
            Failure::Timeout => format!(
                "{}: no answer within {}",
                admin_client::describe(config),
                ms(timeout)
            ),
            Failure::Error(e) => admin_client::explain(e, config, target),
        }
    }
}

/// A latency as `1.2 ms` or `35 ms`.
pub(super) fn ms(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

/// Item 3: the pools of every pooler together fit under PostgreSQL's limit.
pub async fn pool_fit(inputs: &Inputs) -> Outcome {
    let config = match inputs.config.config() {
        Ok(config) => config,
        Err(skip) => return skip,
    };
    let Some(pg) = &inputs.pg else {
        return Outcome::skip("needs --pg-url URL (PostgreSQL, directly)");
    };
    if config.databases.is_empty() {
        return Outcome::skip("[databases] is empty: no pools to size");
    }
    let client = match connect(pg, inputs.timeout).await {
        Ok(client) => client,
        Err(f) => {
            let why = f.explain(pg, Target::Postgres("--pg-url"), inputs.timeout);
            return Outcome::new(Status::Fail, why);
        }
    };
    // reserved_connections (PostgreSQL 16+) also keeps slots from ordinary roles.
    let sql = "SELECT current_setting('max_connections')::int8, \
               current_setting('superuser_reserved_connections')::int8, \
               coalesce(current_setting('reserved_connections', true), '0')::int8";
    let limits = match client.query_one(sql, &[]).await {
        Ok(row) => (
            row.get::<_, i64>(0),
            row.get::<_, i64>(1) + row.get::<_, i64>(2),
        ),
        Err(e) => {
            let why = admin_client::pg_error_text(&e);
            return Outcome::new(Status::Fail, format!("cannot read max_connections: {why}"));
        }
    };
    judge_fit(config, limits, inputs.poolers)
}

/// Compares the pools' sum × `poolers` with `max_connections − reserved` and adds the `size`
/// formula's suggestion.
pub fn judge_fit(
    config: &Config,
    (max_connections, reserved): (i64, i64),
    poolers: i64,
) -> Outcome {
    let s = &config.pgbouncer;
    let (default_size, default_reserve, default_cap) = (
        s.int(Key::DefaultPoolSize),
        s.int(Key::ReservePoolSize),
        s.int(Key::MaxDbConnections),
    );
    let pools: Vec<i64> = config
        .databases
        .values()
        .map(|db| {
            let size = db.pool.pool_size.map_or(default_size, i64::from);
            let reserve = db.pool.reserve_pool_size.map_or(default_reserve, i64::from);
            let cap = db.pool.max_db_connections.map_or(default_cap, i64::from);
            // max_db_connections caps every pool of the database together.
            if cap > 0 {
                (size + reserve).min(cap)
            } else {
                size + reserve
            }
        })
        .collect();
    let per_pooler: i64 = pools.iter().sum();
    let total = per_pooler.saturating_mul(poolers);
    let usable = max_connections - reserved;
    let terms = pools
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(" + ");
    let wildcard = if config.databases.contains_key("*") {
        " (`*` counted once)"
    } else {
        ""
    };
    let fits = total <= usable;
    let verdict = format!(
        "pools {terms}{wildcard} × {poolers} pooler{} = {total} {} {usable} \
         (max_connections {max_connections} − {reserved} reserved)",
        if poolers == 1 { "" } else { "s" },
        if fits { "≤" } else { ">" },
    );
    let largest = config
        .databases
        .values()
        .map(|db| db.pool.pool_size.map_or(default_size, i64::from))
        .max()
        .unwrap_or(default_size);
    let instances = i64::try_from(pools.len())
        .unwrap_or(i64::MAX)
        .saturating_mul(poolers);
    // Each pool is one of the formula's "instances". Its reserve pool is per pool, so it goes
    // into the headroom (counted in the demand, once per pool) rather than into --reserve-pool
    // (taken off once): then "fits" agrees with the sum above.
    let plan = size::plan(&size::Args {
        instances,
        per_instance: largest.max(1),
        headroom: default_reserve.saturating_mul(instances),
        pg_max_connections: Some(max_connections),
        admin_reserve: reserved,
        reserve_pool: 0,
        poolers,
        output: crate::cli::output::OutputArgs::default(),
    });
    let suggestion = match plan {
        Ok(plan) if plan.fits => format!("size: default_pool_size {} fits", plan.default_pool_size),
        Ok(plan) => format!(
            "size suggests default_pool_size {}, max_db_connections {} per pooler",
            plan.default_pool_size, plan.per_pooler_max_db_connections
        ),
        Err(why) => format!("size: {why}"),
    };
    let status = if fits { Status::Pass } else { Status::Fail };
    Outcome::new(status, format!("{verdict}; {suggestion}"))
}

/// Where the pooler should answer: `--admin-url`, else the config's first listen address.
fn pooler_target(inputs: &Inputs) -> Option<tokio_postgres::Config> {
    if let Some(admin) = &inputs.admin {
        return Some(admin.clone());
    }
    let config = inputs.config.config().ok()?;
    let addr = config.pgbouncer.listen_addrs().first().copied()?;
    let host = match addr {
        "*" | "0.0.0.0" => "127.0.0.1",
        "::" => "::1",
        other => other,
    };
    let mut target = tokio_postgres::Config::new();
    target
        .host(host)
        .port(config.pgbouncer.listen_port())
        .user("pgbouncer")
        .dbname("pgbouncer");
    Some(target)
}

/// Item 5: something at the pooler's address answers a startup packet (pg_isready's test: a
/// server error or a password request counts as an answer).
pub async fn pooler_up(inputs: &Inputs) -> Outcome {
    let Some(target) = pooler_target(inputs) else {
        return Outcome::skip("needs --admin-url URL or --config FILE (listen_addr/listen_port)");
    };
    let (host, port) = admin_client::host_and_port(&target);
    let started = Instant::now();
    let result = connect(&target, inputs.timeout).await;
    let took = ms(started.elapsed());
    match result {
        Ok(_) => Outcome::new(
            Status::Pass,
            format!("{host}:{port} accepted a login in {took}"),
        ),
        Err(Failure::Error(e)) if e.as_db_error().is_some() || answered(&e) => Outcome::new(
            Status::Pass,
            format!(
                "{host}:{port} answered in {took} ({})",
                if answered(&e) {
                    "it asks for a password".to_owned()
                } else {
                    admin_client::pg_error_text(&e)
                }
            ),
        ),
        Err(f) => {
            let flag = if inputs.admin.is_some() {
                "--admin-url"
            } else {
                "listen_port in --config"
            };
            Outcome::new(
                Status::Fail,
                f.explain(&target, Target::Console(flag), inputs.timeout),
            )
        }
    }
}

/// True when tokio-postgres gave up after the server spoke (it asked for a missing password).
fn answered(err: &tokio_postgres::Error) -> bool {
    admin_client::pg_error_text(err).contains("password missing")
}

/// True when a login failed on the credentials (PgBouncer says 08P01, PostgreSQL 28P01/28000).
fn auth_failed(err: &tokio_postgres::Error) -> bool {
    match err.as_db_error() {
        Some(db) => {
            matches!(
                *db.code(),
                SqlState::INVALID_PASSWORD | SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            ) || db.message().contains("password authentication failed")
        }
        None => answered(err),
    }
}

/// Items 6 and 7 over one login with the app's URL: `SELECT 1` with its latency, and whether
/// the credentials were accepted (an auth failure fails 7; anything else fails 6).
pub async fn app_session(inputs: &Inputs) -> (Outcome, Outcome) {
    let Some(app) = &inputs.app else {
        let skip = Outcome::skip("needs --database-url URL or DATABASE_URL");
        return (skip.clone(), skip);
    };
    let pg = &app.pg;
    let who = admin_client::describe(pg);
    let started = Instant::now();
    let client = match connect(pg, inputs.timeout).await {
        Ok(client) => client,
        Err(Failure::Error(e)) if auth_failed(&e) => {
            let (host, port) = admin_client::host_and_port(pg);
            let why = format!(
                "{host}:{port} refused {}: {} — check the password in DATABASE_URL and the pooler's auth_file",
                pg.get_user().unwrap_or("?"),
                admin_client::pg_error_text(&e)
            );
            return (
                Outcome::new(Status::Fail, "no session: the login was refused (item 7)"),
                Outcome::new(Status::Fail, why),
            );
        }
        Err(Failure::Error(e)) if admin_client::is_refused(&e) => {
            let (host, port) = admin_client::host_and_port(pg);
            return (
                Outcome::new(
                    Status::Fail,
                    format!("nothing listens on {host}:{port} (--database-url / DATABASE_URL)"),
                ),
                Outcome::skip("not judged: no pooler to log in to (item 6)"),
            );
        }
        Err(f) => {
            let why = f.explain(pg, Target::Postgres("--database-url"), inputs.timeout);
            return (
                Outcome::new(Status::Fail, why),
                Outcome::skip("not judged: the login did not reach authentication (item 6)"),
            );
        }
    };
    let login = ms(started.elapsed());
    let accepted = Outcome::new(Status::Pass, format!("{who} logged in ({login})"));
    let started = Instant::now();
    let query = tokio::time::timeout(inputs.timeout, client.simple_query("SELECT 1")).await;
    let took = ms(started.elapsed());
    let health = match query {
        Err(_) => Outcome::new(
            Status::Fail,
            format!("SELECT 1 got no answer within {}", ms(inputs.timeout)),
        ),
        Ok(Err(e)) => Outcome::new(
            Status::Fail,
            format!("SELECT 1 failed: {}", admin_client::pg_error_text(&e)),
        ),
        Ok(Ok(_)) => Outcome::new(Status::Pass, format!("SELECT 1 in {took} via {who}")),
    };
    (health, accepted)
}

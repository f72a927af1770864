//! The open-file limit at start. PgBouncer logs it beside what its configuration may need
//! ("kernel file descriptor limit: …"), and operators grep for that line; bouncectl logs the
//! same line and, when the soft limit is below that need, raises it to the hard limit first, so
//! a systemd unit's default 1024 does not cap `max_client_conn` at about a thousand.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

use crate::config::{Config, Key};

/// Descriptors the configuration may hold at once, as PgBouncer counts them: every client,
/// ten spare, and each database's pool size, once per auth_file user unless the database
/// forces its user.
fn expected_use(config: &Config, users: usize) -> u64 {
    let s = &config.pgbouncer;
    let clients = u64::try_from(s.int(Key::MaxClientConn)).unwrap_or(0);
    let default_size = u64::try_from(s.int(Key::DefaultPoolSize)).unwrap_or(0);
    let users = u64::try_from(users).unwrap_or(u64::MAX);
    let servers = config.databases.values().fold(0u64, |sum, db| {
        let size = db.pool.pool_size.map_or(default_size, u64::from);
        let pools = if db.target.user.is_some() { 1 } else { users };
        sum.saturating_add(size.saturating_mul(pools))
    });
    clients.saturating_add(10).saturating_add(servers)
}

/// Raises the soft limit to the hard one when it is below what `config` may need with `users`
/// auth_file users, and logs the outcome.
pub fn check(config: &Config, users: usize) {
    let expected = expected_use(config, users);
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => {
            tracing::error!("could not get RLIMIT_NOFILE: {e}");
            return;
        }
    };
    let mut now = soft;
    if soft < expected && soft < hard {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => now = hard,
            Err(e) => tracing::warn!("could not raise the file descriptor limit to {hard}: {e}"),
        }
    }
    tracing::info!(
        "kernel file descriptor limit: {now} (hard: {hard}); max_client_conn: {}, max expected \
         fd use: {expected}",
        config.pgbouncer.int(Key::MaxClientConn)
    );
    if now < expected {
        tracing::warn!(
            "the file descriptor limit ({now}) is below the expected use ({expected}): \
             clients past it wait to be accepted; raise the hard limit (ulimit -Hn, LimitNOFILE=)"
        );
    }
}

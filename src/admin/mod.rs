//! The admin console: the fake `pgbouncer` database. Reads Simple Query text as PgBouncer's
//! console commands ([`command`]), answers SHOW from the live pools, clients and counters
//! ([`show`], [`show_conns`], [`show_stats`]) and runs the process controls ([`control`]).
//! The proxy routes console logins here and hands over a [`Host`]; this module never imports
//! `proxy`.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )
)]

pub mod columns;
pub mod command;
pub mod console;
pub mod control;
pub mod show;
pub mod show_conns;
pub mod show_stats;
pub mod table;
pub mod ticker;

use std::sync::Arc;

use crate::config::Config;
use crate::pool::PoolRegistry;
use crate::registry::ClientRegistry;
use crate::shutdown::Shutdown;

pub use command::{AdminCommand, ParseError, ShutdownMode, parse};
pub use console::{Console, serve};

#[cfg(any(fuzzing, test))]
pub use command::fuzz_entry;

/// The virtual database name of the console.
pub const DATABASE: &str = "pgbouncer";

/// The PgBouncer release whose console this one matches (column lists of SHOW).
pub const PGBOUNCER_VERSION: &str = "1.25.2";

/// What `SHOW VERSION` answers: PgBouncer-shaped (tools parse the leading `PgBouncer x.y.z`),
/// naming bouncectl too.
pub fn version_text() -> String {
    format!(
        "PgBouncer {PGBOUNCER_VERSION} (bouncectl {})",
        env!("CARGO_PKG_VERSION")
    )
}

/// The result of `SHOW what` (upper case) as the console would send it, for readers inside the
/// process (the metrics endpoint); `None` for HELP, fake parameters and unknown names.
pub fn show_table(host: &dyn Host, what: &str) -> Option<table::Table> {
    show_conns::table(host, what).or_else(|| {
        let mut scratch = bytes::BytesMut::new();
        show::table(host, what, &mut scratch).ok().flatten()
    })
}

/// What a console user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `admin_users`: everything.
    Admin,
    /// `stats_users` (or anyone under `auth_type = any`): read-only SHOW.
    Stats,
}

/// The running pooler as the console sees it; the proxy's shared state implements it.
pub trait Host: Send + Sync {
    /// The configuration in force.
    fn config(&self) -> Arc<Config>;
    /// Installs a changed configuration (SET); pools take the new settings.
    fn replace_config(&self, config: Config);
    /// Re-reads the configuration file and auth_file, as SIGHUP does; on error the old
    /// configuration stays and the error is returned.
    fn reload(&self) -> Result<(), String>;
    /// Every pool.
    fn pools(&self) -> &PoolRegistry;
    /// Every logged-in client.
    fn clients(&self) -> &ClientRegistry;
    /// The lifecycle handle.
    fn shutdown(&self) -> &Shutdown;
    /// Client sockets open now, logged in or not.
    fn client_count(&self) -> usize;
    /// Names of the users known from auth_file.
    fn auth_users(&self) -> Vec<String>;
    /// Cancels being forwarded to each peer used so far: (peer id, sending, waiting for a slot).
    fn peer_cancels(&self) -> Vec<(u16, usize, usize)>;
}

/// Whether `user` may use the console, and how, under `config` (`auth_type = any` lets everyone
/// read). `None` means "not allowed".
pub fn access_for(config: &Config, user: &str) -> Option<Access> {
    let s = &config.pgbouncer;
    let listed = |key| s.list(key).contains(&user);
    if listed(crate::config::Key::AdminUsers) {
        Some(Access::Admin)
    } else if listed(crate::config::Key::StatsUsers)
        || s.auth_type() == crate::config::AuthType::Any
    {
        Some(Access::Stats)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;

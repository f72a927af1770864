//! The console's process controls with PgBouncer's semantics and error texts: PAUSE waits until
//! every server of the paused pools is released (and closes them), RESUME lets waiting clients
//! through, KILL drops a database's clients and keeps it paused, RECONNECT marks servers to close
//! at release, RELOAD and SET change the configuration, SHUTDOWN moves the lifecycle on.

use std::sync::Arc;
use std::time::Duration;

use super::command::{AdminCommand, ShutdownMode};
use super::console::ConsoleError;
use super::{DATABASE, Host};
use crate::pool::{Pool, reasons};
use crate::shutdown::Phase;

/// How often PAUSE and WAIT_CLOSE look again at the servers they wait for.
const POLL: Duration = Duration::from_millis(20);

/// `SET key = value` for a real setting: validated as the file would be, reloadable keys only.
pub fn set(host: &dyn Host, key: &str, value: &str) -> Result<(), ConsoleError> {
    let mut config = (*host.config()).clone();
    config.set(key, value).map_err(ConsoleError::new)?;
    host.replace_config(config);
    tracing::info!(key, value, "SET from the admin console");
    Ok(())
}

/// Runs a control command; returns the CommandComplete tag.
pub async fn run(host: &dyn Host, cmd: AdminCommand) -> Result<&'static str, ConsoleError> {
    Ok(match cmd {
        AdminCommand::Pause(db) => {
            let db = known(host, db, "pause")?;
            if !host.pools().controls.pause(db.as_deref()) {
                return Err(ConsoleError::new("already suspended/paused"));
            }
            sync_paused(host);
            let pools = pools_of(host, db.as_deref());
            wait_until(|| pools.iter().all(|p| in_use(p) == 0)).await;
            pools.iter().for_each(|p| p.close_idle(reasons::PAUSE));
            "PAUSE"
        }
        AdminCommand::Resume(db) => {
            let db = known(host, db, "resume")?;
            if !host.pools().controls.resume(db.as_deref()) {
                return Err(ConsoleError::new("pooler is not paused/suspended"));
            }
            sync_paused(host);
            "RESUME"
        }
        AdminCommand::Disable(db) | AdminCommand::Enable(db) if db == DATABASE => {
            return Err(ConsoleError::new(format!("cannot disable admin db: {db}")));
        }
        AdminCommand::Disable(db) => {
            let db = known(host, Some(db), "disable")?.unwrap_or_default();
            host.pools().controls.set_disabled(&db, true);
            "DISABLE"
        }
        AdminCommand::Enable(db) => {
            let db = known(host, Some(db), "enable")?.unwrap_or_default();
            host.pools().controls.set_disabled(&db, false);
            "ENABLE"
        }
        AdminCommand::Reconnect(db) => {
            let db = known(host, db, "reconnect")?;
            for pool in pools_of(host, db.as_deref()) {
                pool.servers().iter().for_each(|s| s.mark_close_needed());
                pool.close_idle(reasons::CONFIG_CHANGED);
            }
            "RECONNECT"
        }
        AdminCommand::Kill(db) => {
            let db = known(host, db, "kill")?;
            host.pools().controls.pause(db.as_deref());
            sync_paused(host);
            for client in host.clients().snapshot() {
                let ours = db.as_deref().is_none_or(|d| d == client.database);
                if ours && client.database != DATABASE {
                    client.kill();
                }
            }
            pools_of(host, db.as_deref())
                .iter()
                .for_each(|p| p.close_idle(reasons::KILLED));
            "KILL"
        }
        AdminCommand::KillClient(id) => {
            let client = host
                .clients()
                .get(id)
                .ok_or_else(|| ConsoleError::new(format!("client not found: {id}")))?;
            client.kill();
            "KILL_CLIENT"
        }
        AdminCommand::Suspend => {
            if !host.pools().controls.suspend() {
                return Err(ConsoleError::new("already suspended"));
            }
            sync_paused(host);
            "SUSPEND"
        }
        AdminCommand::Shutdown(mode) => {
            let phase = match mode {
                ShutdownMode::Immediate => Phase::Immediate,
                ShutdownMode::WaitForServers => Phase::WaitForServers,
                ShutdownMode::WaitForClients => Phase::WaitForClients,
            };
            tracing::info!(?phase, "SHUTDOWN from the admin console");
            host.shutdown().advance(phase);
            "SHUTDOWN"
        }
        AdminCommand::Reload => {
            host.reload().map_err(|message| ConsoleError {
                message,
                sqlstate: "F0000",
            })?;
            "RELOAD"
        }
        AdminCommand::WaitClose(db) => {
            let db = known(host, db, "wait_close")?;
            let pools = pools_of(host, db.as_deref());
            wait_until(|| {
                pools
                    .iter()
                    .all(|p| p.servers().iter().all(|s| !s.close_needed()))
            })
            .await;
            "WAIT_CLOSE"
        }
        AdminCommand::Empty | AdminCommand::Show(_) | AdminCommand::Set { .. } => {
            return Err(ConsoleError::new("not a control command"));
        }
    })
}

/// Checks a command's database argument: it must exist and must not be the console.
fn known(host: &dyn Host, db: Option<String>, verb: &str) -> Result<Option<String>, ConsoleError> {
    let Some(db) = db else { return Ok(None) };
    if db == DATABASE {
        return Err(ConsoleError::new(format!("cannot {verb} admin db: {db}")));
    }
    let config = host.config();
    if !super::show::database_list(host, &config).contains_key(&db) {
        return Err(ConsoleError::new(format!("no such database: {db}")));
    }
    Ok(Some(db))
}

fn pools_of(host: &dyn Host, db: Option<&str>) -> Vec<Arc<Pool>> {
    host.pools()
        .pools()
        .into_iter()
        .filter(|p| db.is_none_or(|d| d == p.database))
        .collect()
}

/// Brings every pool's queue in line with the PAUSE/SUSPEND switches.
fn sync_paused(host: &dyn Host) {
    let controls = &host.pools().controls;
    for pool in host.pools().pools() {
        pool.queue.set_paused(controls.is_paused(&pool.database));
    }
}

/// Servers of `pool` handed out or being opened.
fn in_use(pool: &Pool) -> usize {
    let counts = pool.queue.counts();
    counts.open.saturating_sub(counts.idle)
}

async fn wait_until(mut done: impl FnMut() -> bool) {
    while !done() {
        tokio::time::sleep(POLL).await;
    }
}

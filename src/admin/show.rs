//! SHOW commands about pools, databases, counters and settings, with the column names, order and
//! wire types of PgBouncer's `admin.c`/`stats.c` (reference §1b). Values come from the pools'
//! counters and queues and from the configuration in force.

use std::collections::BTreeMap;

use bytes::BytesMut;

use super::columns::*;
use super::console::ConsoleError;
use super::show_stats;
use super::table::{Table, v};
use super::{DATABASE, Host};
use crate::config::{Config, Database, Key};
use crate::protocol::backend::Severity;
use crate::protocol::backend::results::command_complete;
use crate::registry::{ClientState, ServerState};

const HELP: &str = "SHOW HELP|CONFIG|DATABASES|POOLS|CLIENTS|SERVERS|USERS|VERSION\n\
SHOW PEERS|PEER_POOLS\n\
SHOW FDS|SOCKETS|ACTIVE_SOCKETS|LISTS|MEM|STATE\n\
SHOW DNS_HOSTS|DNS_ZONES\n\
SHOW STATS|STATS_TOTALS|STATS_AVERAGES|TOTALS|LATENCY\n\
SET key = arg\n\
RELOAD\n\
PAUSE [<db>]\n\
RESUME [<db>]\n\
DISABLE <db>\n\
ENABLE <db>\n\
RECONNECT [<db>]\n\
KILL [<db>]\n\
KILL_CLIENT <client_id>\n\
SUSPEND\n\
SHUTDOWN\n\
SHUTDOWN WAIT_FOR_SERVERS|WAIT_FOR_CLIENTS\n\
WAIT_CLOSE [<db>]";

/// SHOW HELP: a NOTICE "Console usage" whose DETAIL lists the commands, as PgBouncer's.
fn help(out: &mut BytesMut) -> Result<(), ConsoleError> {
    use crate::protocol::backend::{ErrorField, error_field as f, error_fields};
    use crate::protocol::tag::backend::NOTICE_RESPONSE;
    let severity = Severity::Notice.as_str().as_bytes();
    let field = |code, value| ErrorField { code, value };
    error_fields(
        out,
        NOTICE_RESPONSE,
        [
            field(f::SEVERITY, severity),
            field(f::SEVERITY_NONLOCALIZED, severity),
            field(f::CODE, b"00000".as_slice()),
            field(f::MESSAGE, b"Console usage".as_slice()),
            field(f::DETAIL, HELP.as_bytes()),
        ],
    )?;
    Ok(())
}

/// A one-cell result named `name` (SHOW of a fake parameter).
pub fn single(name: &str, value: &str, out: &mut BytesMut) -> Result<(), ConsoleError> {
    use crate::protocol::backend::results::{RowField, data_row, row_description, type_oid};
    row_description(out, [RowField::text(name.as_bytes(), type_oid::TEXT)])?;
    data_row(out, [Some(value.as_bytes())])?;
    Ok(command_complete(out, "SHOW")?)
}

/// The result of `SHOW what`, `None` for a name this module does not own (HELP is written
/// straight to `out`).
pub fn table(
    host: &dyn Host,
    what: &str,
    out: &mut BytesMut,
) -> Result<Option<Table>, ConsoleError> {
    let config = host.config();
    Ok(Some(match what {
        "STATS" => show_stats::stats(host, &config),
        "STATS_TOTALS" => show_stats::stats_part(host, &config, STATS_TOTALS, false),
        "STATS_AVERAGES" => show_stats::stats_part(host, &config, STATS_AVERAGES, true),
        "TOTALS" => show_stats::totals(host),
        "POOLS" => pools(host),
        "DATABASES" => databases(host, &config),
        "USERS" => users(host, &config),
        "CONFIG" => {
            let mut t = Table::new(CONFIG);
            for row in config.show_config() {
                let yes = if row.changeable { "yes" } else { "no" };
                t.row(vec![v(row.key), v(row.value), v(row.default), v(yes)]);
            }
            t
        }
        "LISTS" => lists(host, &config),
        "LATENCY" => show_stats::latency(host, &config),
        "VERSION" => {
            let mut t = Table::new(VERSION);
            t.row(vec![v(super::version_text())]);
            t
        }
        "STATE" => state(host),
        "MEM" => mem(host),
        "PEERS" => {
            let mut t = Table::new(PEERS);
            for (id, peer) in &config.peers {
                let size = config.peer_pool_size(peer);
                t.row(vec![v(id), v(&peer.host), v(peer.port), v(size)]);
            }
            t
        }
        "PEER_POOLS" => {
            // PgBouncer lists a peer's pool once a cancel has been forwarded to it.
            let mut t = Table::new(PEER_POOLS);
            for (id, sending, waiting) in host.peer_cancels() {
                t.row(vec![v(id), v(sending), v(waiting), v(sending), v(0)]);
            }
            t
        }
        "DNS_HOSTS" => {
            let mut t = Table::new(DNS_HOSTS);
            for name in host.pools().dns().names() {
                t.row(vec![v(name.hostname), v(name.ttl), v(name.addrs)]);
            }
            t
        }
        "DNS_ZONES" => Table::new(DNS_ZONES),
        "HELP" => {
            help(out)?;
            command_complete(out, "SHOW")?;
            return Ok(None);
        }
        _ => return Ok(None),
    }))
}

/// Every database the console reports: configured ones (not `*`), those a wildcard created a pool
/// for, and the console itself; with their `[databases]` entry.
pub fn database_list(host: &dyn Host, config: &Config) -> BTreeMap<String, Option<Database>> {
    let mut dbs: BTreeMap<String, Option<Database>> = config
        .databases
        .iter()
        .filter(|(name, _)| name.as_str() != "*")
        .map(|(name, db)| (name.clone(), Some(db.clone())))
        .collect();
    for pool in host.pools().pools() {
        dbs.entry(pool.database.clone())
            .or_insert_with(|| config.database(&pool.database).cloned());
    }
    dbs.insert(DATABASE.to_owned(), None);
    dbs
}

fn pools(host: &dyn Host) -> Table {
    let clients = host.clients().snapshot();
    let mut t = Table::new(POOLS);
    let console = clients.iter().filter(|c| c.database == DATABASE).count();
    let mut rows = vec![(
        DATABASE.to_owned(),
        DATABASE.to_owned(),
        [console, 0, 0, 0, 0, 0, 0],
        0u64,
        "statement".to_owned(),
    )];
    for pool in host.pools().pools() {
        let mine = || {
            clients
                .iter()
                .filter(|c| c.database == pool.database && c.pool_user() == pool.user)
        };
        let active = mine().filter(|c| c.state() != ClientState::Waiting).count();
        let waiting: Vec<u64> = mine()
            .filter(|c| c.state() == ClientState::Waiting)
            .map(|c| c.wait_us())
            .collect();
        let servers = pool.servers();
        let count = |s: ServerState| servers.iter().filter(|x| x.state() == s).count();
        let queued = u64::try_from(pool.queue.counts().max_wait.as_micros()).unwrap_or(0);
        let maxwait = waiting.iter().copied().max().unwrap_or(0).max(queued);
        rows.push((
            pool.database.clone(),
            pool.user.clone(),
            [
                active,
                waiting.len(),
                count(ServerState::Active),
                count(ServerState::Idle),
                0,
                count(ServerState::Tested),
                count(ServerState::Login),
            ],
            maxwait,
            pool.settings().mode.as_str().to_owned(),
        ));
    }
    for (
        db,
        user,
        [
            cl_active,
            cl_waiting,
            sv_active,
            sv_idle,
            sv_used,
            sv_tested,
            sv_login,
        ],
        maxwait,
        mode,
    ) in rows
    {
        t.row(vec![
            v(db),
            v(user),
            v(cl_active),
            v(cl_waiting),
            v(0),
            v(0),
            v(sv_active),
            v(0),
            v(0),
            v(sv_idle),
            v(sv_used),
            v(sv_tested),
            v(sv_login),
            v(maxwait / 1_000_000),
            v(maxwait % 1_000_000),
            v(mode),
            None,
        ]);
    }
    t
}

fn databases(host: &dyn Host, config: &Config) -> Table {
    let s = &config.pgbouncer;
    let clients = host.clients().snapshot();
    let pools = host.pools().pools();
    let controls = &host.pools().controls;
    let mut t = Table::new(DATABASES);
    for (name, db) in database_list(host, config) {
        let current_clients = clients.iter().filter(|c| c.database == name).count();
        let flag = |b: bool| v(i32::from(b));
        let Some(db) = db else {
            t.row(vec![
                v(&name),
                None,
                v(s.listen_port()),
                v(&name),
                v(&name),
                v(2),
                v(0),
                v(0),
                v(0),
                v("statement"),
                None,
                v(0),
                v(0),
                v(0),
                v(current_clients),
                flag(false),
                flag(false),
            ]);
            continue;
        };
        let p = &db.pool;
        let servers: usize = pools
            .iter()
            .filter(|x| x.database == name)
            .map(|x| x.queue.counts().open)
            .sum();
        t.row(vec![
            v(&name),
            db.target.host.clone(),
            v(db.target.port),
            v(db.target.dbname.clone().unwrap_or_else(|| name.clone())),
            db.target.user.clone(),
            v(p.pool_size
                .map_or_else(|| s.int(Key::DefaultPoolSize), i64::from)),
            v(p.min_pool_size
                .map_or_else(|| s.int(Key::MinPoolSize), i64::from)),
            v(p.reserve_pool_size
                .map_or_else(|| s.int(Key::ReservePoolSize), i64::from)),
            v(p.server_lifetime
                .unwrap_or_else(|| s.duration(Key::ServerLifetime))
                .as_secs()),
            p.pool_mode.map(|m| m.as_str().to_owned()),
            db.target
                .load_balance_hosts
                .clone()
                .filter(|_| db.target.host.as_deref().is_some_and(|h| h.contains(','))),
            v(p.max_db_connections
                .map_or_else(|| s.int(Key::MaxDbConnections), i64::from)),
            v(servers),
            v(p.max_db_client_connections
                .map_or_else(|| s.int(Key::MaxDbClientConnections), i64::from)),
            v(current_clients),
            flag(controls.is_paused(&name)),
            flag(controls.is_disabled(&name)),
        ]);
    }
    t
}

fn users(host: &dyn Host, config: &Config) -> Table {
    let s = &config.pgbouncer;
    let mut names: std::collections::BTreeSet<String> = config.users.keys().cloned().collect();
    names.extend(host.auth_users());
    let pools = host.pools().pools();
    names.extend(pools.iter().map(|p| p.user.clone()));
    let clients = host.clients().snapshot();
    let mut t = Table::new(USERS);
    for name in names {
        let u = config.users.get(&name);
        let servers: usize = pools
            .iter()
            .filter(|p| p.user == name)
            .map(|p| p.queue.counts().open)
            .sum();
        t.row(vec![
            v(&name),
            v(u.and_then(|u| u.pool_size)
                .map(|n| n.to_string())
                .unwrap_or_default()),
            v(u.and_then(|u| u.reserve_pool_size)
                .map(|n| n.to_string())
                .unwrap_or_default()),
            u.and_then(|u| u.pool_mode).map(|m| m.as_str().to_owned()),
            v(u.and_then(|u| u.max_user_connections)
                .map_or_else(|| s.int(Key::MaxUserConnections), i64::from)),
            v(servers),
            v(u.and_then(|u| u.max_user_client_connections)
                .map_or_else(|| s.int(Key::MaxUserClientConnections), i64::from)),
            v(clients.iter().filter(|c| c.user == name).count()),
        ]);
    }
    t
}

fn lists(host: &dyn Host, config: &Config) -> Table {
    let pools = host.pools().pools();
    let used_clients = host.clients().snapshot().len();
    let servers: usize = pools.iter().map(|p| p.servers().len()).sum();
    let users = users(host, config).len();
    let dns = host.pools().dns();
    let items = [
        ("databases", database_list(host, config).len()),
        ("users", users),
        ("peers", config.peers.len()),
        ("pools", pools.len() + 1),
        ("peer_pools", 0),
        ("free_clients", 0),
        ("used_clients", used_clients),
        (
            "login_clients",
            host.client_count().saturating_sub(used_clients),
        ),
        ("free_servers", 0),
        ("used_servers", servers),
        ("dns_names", dns.held()),
        ("dns_zones", 0),
        ("dns_queries", dns.queries()),
        ("dns_pending", 0),
    ];
    let mut t = Table::new(LISTS);
    for (name, n) in items {
        t.row(vec![v(name), v(n)]);
    }
    t
}

fn state(host: &dyn Host) -> Table {
    let controls = &host.pools().controls;
    let yes = |b: bool| v(if b { "yes" } else { "no" });
    let paused = controls.all_paused();
    let suspended = controls.is_suspended();
    let mut t = Table::new(STATE);
    t.row(vec![v("active"), yes(!paused && !suspended)]);
    t.row(vec![v("paused"), yes(paused)]);
    t.row(vec![v("suspended"), yes(suspended)]);
    t
}

/// PgBouncer reports its slab caches; the pooler has no slabs, so each row is one kind of
/// object: its size, how many are live, and their total.
fn mem(host: &dyn Host) -> Table {
    use std::mem::size_of;
    let pools = host.pools().pools();
    let servers: usize = pools.iter().map(|p| p.servers().len()).sum();
    let config = host.config();
    let rows = [
        (
            "user_cache",
            size_of::<crate::config::UserSettings>(),
            config.users.len(),
        ),
        ("db_cache", size_of::<Database>(), config.databases.len()),
        ("pool_cache", size_of::<crate::pool::Pool>(), pools.len()),
        (
            "server_cache",
            size_of::<crate::registry::ServerInfo>(),
            servers,
        ),
        (
            "client_cache",
            size_of::<crate::registry::ClientInfo>(),
            host.clients().snapshot().len(),
        ),
    ];
    let mut t = Table::new(MEM);
    for (name, size, used) in rows {
        t.row(vec![v(name), v(size), v(used), v(0), v(size * used)]);
    }
    t
}

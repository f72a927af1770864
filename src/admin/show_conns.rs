//! SHOW CLIENTS, SERVERS, SOCKETS, ACTIVE_SOCKETS and FDS: one row per live connection, from the
//! entries sessions and pools keep up to date in [`crate::registry`]. Clients still logging in
//! are not listed (as PgBouncer).

use super::Host;
use super::columns::{CLIENTS, FDS, SOCKETS};
use super::table::{Table, time, v};
use crate::registry::{ClientInfo, ClientState, ServerInfo, ServerState};

fn ptr(kind: char, id: u64) -> Option<String> {
    (id != 0).then(|| format!("{kind}-{id:#x}"))
}

fn client_row(c: &ClientInfo, prefix: &str) -> Vec<Option<String>> {
    let wait = c.wait_us();
    let e = &c.endpoints;
    vec![
        v("C"),
        v(&c.user),
        v(&c.database),
        v("none"),
        v(format!("{prefix}{}", c.state().as_str())),
        v(&e.addr),
        v(e.port),
        v(&e.local_addr),
        v(e.local_port),
        time(c.connect_time),
        time(c.request_time()),
        v(wait / 1_000_000),
        v(wait % 1_000_000),
        v(0),
        ptr('C', c.id),
        ptr('S', c.link()),
        v(c.remote_pid),
        v(&c.tls),
        v(c.application_name()),
        v(0),
        v(c.id),
    ]
}

fn server_row(s: &ServerInfo, db: &str, user: &str, prefix: &str) -> Vec<Option<String>> {
    let e = &s.endpoints;
    let local = s.local();
    vec![
        v("S"),
        v(user),
        v(db),
        v("none"),
        v(format!("{prefix}{}", s.state().as_str())),
        v(&e.addr),
        v(e.port),
        v(local.0),
        v(local.1),
        time(s.connect_time),
        time(s.request_time()),
        v(0),
        v(0),
        v(i32::from(s.close_needed())),
        ptr('S', s.id),
        ptr('C', s.link()),
        v(s.remote_pid()),
        v(""),
        v(s.application_name()),
        v(0),
        v(s.id),
    ]
}

/// The result of `SHOW what` for the connection lists; `None` for other names.
pub fn table(host: &dyn Host, what: &str) -> Option<Table> {
    let (columns, clients, servers, prefixed, active_only) = match what {
        "CLIENTS" => (CLIENTS, true, false, false, false),
        "SERVERS" => (CLIENTS, false, true, false, false),
        "SOCKETS" => (SOCKETS, true, true, true, false),
        "ACTIVE_SOCKETS" => (SOCKETS, true, true, true, true),
        "FDS" => return Some(Table::new(FDS)),
        _ => return None,
    };
    let mut t = Table::new(columns);
    let extra = if prefixed { 7 } else { 0 };
    if clients {
        for c in host.clients().snapshot() {
            if active_only && c.state() == ClientState::Idle {
                continue;
            }
            let mut row = client_row(&c, if prefixed { "cl_" } else { "" });
            row.extend(std::iter::repeat_n(v(0), extra));
            t.row(row);
        }
    }
    if servers {
        for pool in host.pools().pools() {
            for s in pool.servers() {
                if active_only && s.state() == ServerState::Idle {
                    continue;
                }
                let mut row = server_row(
                    &s,
                    &pool.database,
                    &pool.user,
                    if prefixed { "sv_" } else { "" },
                );
                row.extend(std::iter::repeat_n(v(0), extra));
                t.row(row);
            }
        }
    }
    Some(t)
}

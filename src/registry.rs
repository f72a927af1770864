//! Live connections as the admin console shows them (SHOW CLIENTS / SHOW SERVERS): each client
//! session and each server connection owns an entry it updates as its state changes (relaxed
//! atomics and a short mutex for text), and the console reads snapshots. Knows nothing of pools
//! or sessions; it only records what they report.

use std::collections::BTreeMap;
use std::sync::atomic::{
    AtomicBool, AtomicU8, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::task::AtomicWaker;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Each critical section is one read or assignment: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Microseconds since the Unix epoch now.
pub fn now_us() -> u64 {
    wall_us(Instant::now())
}

fn system_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// A monotonic instant and the wall clock's µs at that instant, corrected by
/// [`resync_wall_clock`].
static ANCHOR: LazyLock<(Instant, AtomicU64)> =
    LazyLock::new(|| (Instant::now(), AtomicU64::new(system_us())));

/// The wall-clock µs of a monotonic instant. The data path reads the clock once per event and
/// stamps SHOW CLIENTS/SERVERS with that same reading instead of a second, wall-clock one.
pub fn wall_us(at: Instant) -> u64 {
    let (base, wall) = &*ANCHOR;
    let since = u64::try_from(at.saturating_duration_since(*base).as_micros()).unwrap_or(u64::MAX);
    wall.load(Relaxed).saturating_add(since)
}

/// Re-aligns [`wall_us`] with the system clock (NTP steps and slew); the janitor calls it every
/// second.
pub fn resync_wall_clock() {
    let (base, wall) = &*ANCHOR;
    let since = u64::try_from(base.elapsed().as_micros()).unwrap_or(u64::MAX);
    wall.store(system_us().saturating_sub(since), Relaxed);
}

/// A client's state, with PgBouncer's SHOW CLIENTS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ClientState {
    /// Linked to a server.
    Active = 0,
    /// Logged in, holding no server and asking for none (PgBouncer ≥ 1.25 says `idle`).
    Idle = 1,
    /// Waiting for a server.
    Waiting = 2,
}

impl ClientState {
    /// The name SHOW CLIENTS prints.
    pub fn as_str(self) -> &'static str {
        match self {
            ClientState::Active => "active",
            ClientState::Idle => "idle",
            ClientState::Waiting => "waiting",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => ClientState::Active,
            2 => ClientState::Waiting,
            _ => ClientState::Idle,
        }
    }
}

/// One end of a socket as SHOW lists it. An IP stays binary until a SHOW formats it: a login
/// then costs no formatting and no allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A TCP peer or local address.
    Ip(std::net::IpAddr),
    /// A host name or socket directory (servers), `unix` (unix-socket clients), or nothing.
    Named(std::borrow::Cow<'static, str>),
}

impl Addr {
    /// A unix-socket end.
    pub const UNIX: Addr = Addr::Named(std::borrow::Cow::Borrowed("unix"));
}

impl Default for Addr {
    fn default() -> Self {
        Addr::Named(std::borrow::Cow::Borrowed(""))
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::Ip(ip) => ip.fmt(f),
            Addr::Named(name) => f.write_str(name),
        }
    }
}

/// Where a socket's two ends are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Endpoints {
    /// Remote address (`unix` for a unix socket).
    pub addr: Addr,
    /// Remote port.
    pub port: u16,
    /// Local address.
    pub local_addr: Addr,
    /// Local port.
    pub local_port: u16,
}

/// One logged-in client, updated by its session.
#[derive(Debug)]
pub struct ClientInfo {
    /// The SHOW CLIENTS `id` (KILL_CLIENT takes it).
    pub id: u64,
    /// Login user.
    pub user: String,
    /// Database as the client named it.
    pub database: String,
    /// The user of its pool when not [`ClientInfo::user`] (a database's forced user).
    pool_user: Option<String>,
    /// Socket ends.
    pub endpoints: Endpoints,
    /// Login time, µs since the epoch.
    pub connect_time: u64,
    /// TLS description, empty for plaintext.
    pub tls: String,
    /// Peer process id over a unix socket, else 0.
    pub remote_pid: i32,
    request_time: AtomicU64,
    wait_since: AtomicU64,
    state: AtomicU8,
    link: AtomicU64,
    application_name: Mutex<String>,
    killed: AtomicBool,
    /// The client's own task, woken by [`ClientInfo::kill`]. One waker, not a watch channel:
    /// the relay polls this on every step, and registering here costs a compare, not a lock.
    kill_waker: AtomicWaker,
}

impl ClientInfo {
    /// A new client entry (state `idle`).
    pub fn new(id: u64, user: String, database: String, endpoints: Endpoints) -> Self {
        let now = now_us();
        ClientInfo {
            id,
            user,
            database,
            pool_user: None,
            endpoints,
            connect_time: now,
            tls: String::new(),
            remote_pid: 0,
            request_time: AtomicU64::new(now),
            wait_since: AtomicU64::new(0),
            state: AtomicU8::new(ClientState::Idle as u8),
            link: AtomicU64::new(0),
            application_name: Mutex::new(String::new()),
            killed: AtomicBool::new(false),
            kill_waker: AtomicWaker::new(),
        }
    }

    /// The user of the pool it uses (the forced user of its database, else [`ClientInfo::user`]).
    pub fn pool_user(&self) -> &str {
        self.pool_user.as_deref().unwrap_or(&self.user)
    }

    /// Records the user of its pool (copied only when it is not the login user).
    pub fn set_pool_user(&mut self, pool_user: &str) {
        self.pool_user = (pool_user != self.user).then(|| pool_user.to_owned());
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        ClientState::from_u8(self.state.load(Relaxed))
    }

    /// The client asked for a server at `now` (µs, [`wall_us`]) and waits for one.
    pub fn waiting(&self, now: u64) {
        self.request_time.store(now, Relaxed);
        self.wait_since.store(now, Relaxed);
        self.state.store(ClientState::Waiting as u8, Relaxed);
    }

    /// The client got server `server_id`.
    pub fn linked(&self, server_id: u64) {
        self.wait_since.store(0, Relaxed);
        self.link.store(server_id, Relaxed);
        self.state.store(ClientState::Active as u8, Relaxed);
    }

    /// The client gave its server back.
    pub fn unlinked(&self) {
        self.wait_since.store(0, Relaxed);
        self.link.store(0, Relaxed);
        self.state.store(ClientState::Idle as u8, Relaxed);
    }

    /// The client sent a request at `now` (µs, [`wall_us`]).
    pub fn requested(&self, now: u64) {
        self.request_time.store(now, Relaxed);
    }

    /// Last request time, µs since the epoch.
    pub fn request_time(&self) -> u64 {
        self.request_time.load(Relaxed)
    }

    /// µs the client has been waiting for a server (0 when not waiting).
    pub fn wait_us(&self) -> u64 {
        match self.wait_since.load(Relaxed) {
            0 => 0,
            since => now_us().saturating_sub(since),
        }
    }

    /// The linked server's id, 0 when none.
    pub fn link(&self) -> u64 {
        self.link.load(Relaxed)
    }

    /// Sets the application_name the client reported.
    pub fn set_application_name(&self, name: &str) {
        let mut current = lock(&self.application_name);
        if *current != name {
            name.clone_into(&mut current);
        }
    }

    /// The client's application_name.
    pub fn application_name(&self) -> String {
        lock(&self.application_name).clone()
    }

    /// Links server `info` to this client and passes it the client's application_name (no copy
    /// when the server already shows it).
    pub fn lend_application_name(&self, info: &ServerInfo) {
        info.link_client(self.id, &lock(&self.application_name));
    }

    /// Asks the session to close (KILL, KILL_CLIENT).
    pub fn kill(&self) {
        self.killed.store(true, Release);
        self.kill_waker.wake();
    }

    /// Wakes the client's task without killing it, so an idle session re-checks the shutdown
    /// phase ([`ClientInfo::killed_or`]).
    pub fn nudge(&self) {
        self.kill_waker.wake();
    }

    /// Resolves with `true` once [`ClientInfo::kill`] was called, or with `false` once `give_up`
    /// holds when checked (at the first poll and after each [`ClientInfo::nudge`]). Only the
    /// client's own task may wait here.
    pub async fn killed_or(&self, give_up: impl Fn() -> bool) -> bool {
        std::future::poll_fn(|cx| self.poll_killed_or(cx, &give_up)).await
    }

    /// The poll behind [`ClientInfo::killed_or`], for a relay that waits on several things in
    /// one hand-written poll.
    pub fn poll_killed_or(&self, cx: &mut Context<'_>, give_up: impl Fn() -> bool) -> Poll<bool> {
        let check = || {
            if self.killed.load(Acquire) {
                Some(true)
            } else {
                give_up().then_some(false)
            }
        };
        if let Some(killed) = check() {
            return Poll::Ready(killed);
        }
        self.kill_waker.register(cx.waker());
        // A kill or nudge between the check and the register would otherwise go unseen.
        check().map_or(Poll::Pending, Poll::Ready)
    }

    /// Resolves once [`ClientInfo::kill`] was called. Only the client's own task may wait here.
    pub async fn killed(&self) {
        self.killed_or(|| false).await;
    }
}

/// Every logged-in client by id.
#[derive(Debug, Default)]
pub struct ClientRegistry {
    clients: Mutex<BTreeMap<u64, Arc<ClientInfo>>>,
}

/// A registered client; removes itself from the registry on drop.
#[derive(Debug)]
pub struct ClientHandle {
    info: Arc<ClientInfo>,
    registry: Arc<ClientRegistry>,
}

impl std::ops::Deref for ClientHandle {
    type Target = Arc<ClientInfo>;
    fn deref(&self) -> &Arc<ClientInfo> {
        &self.info
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        lock(&self.registry.clients).remove(&self.info.id);
    }
}

impl ClientRegistry {
    /// Adds `info`; it stays listed while the handle lives.
    pub fn register(self: &Arc<Self>, info: impl Into<Arc<ClientInfo>>) -> ClientHandle {
        let info = info.into();
        lock(&self.clients).insert(info.id, Arc::clone(&info));
        ClientHandle {
            info,
            registry: Arc::clone(self),
        }
    }

    /// Every client, by id.
    pub fn snapshot(&self) -> Vec<Arc<ClientInfo>> {
        lock(&self.clients).values().cloned().collect()
    }

    /// The client with SHOW CLIENTS id `id`.
    pub fn get(&self, id: u64) -> Option<Arc<ClientInfo>> {
        lock(&self.clients).get(&id).cloned()
    }

    /// Wakes every client queued for a server since `at_or_before` (µs, [`wall_us`]) or
    /// earlier, so it can say why it waits (`query_wait_notify`). A timer per wait would cost
    /// every queued transaction; this look, once a second, costs one pass over the clients.
    pub fn nudge_queued_since(&self, at_or_before: u64) {
        for client in lock(&self.clients).values() {
            let since = client.wait_since.load(Relaxed);
            if since != 0 && since <= at_or_before {
                client.nudge();
            }
        }
    }
}

/// A server connection's state, with PgBouncer's SHOW SERVERS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ServerState {
    /// Logging in.
    Login = 0,
    /// Linked to a client.
    Active = 1,
    /// In the pool, ready.
    Idle = 2,
    /// Running a reset or check query.
    Tested = 3,
}

impl ServerState {
    /// The name SHOW SERVERS prints.
    pub fn as_str(self) -> &'static str {
        match self {
            ServerState::Login => "new",
            ServerState::Active => "active",
            ServerState::Idle => "idle",
            ServerState::Tested => "tested",
        }
    }

    fn from_u8(v: u8) -> Self {
        match v {
            0 => ServerState::Login,
            1 => ServerState::Active,
            3 => ServerState::Tested,
            _ => ServerState::Idle,
        }
    }
}

/// One server connection of a pool, updated by the pool.
#[derive(Debug)]
pub struct ServerInfo {
    /// Pooler-wide id.
    pub id: u64,
    /// Server address and port as configured.
    pub endpoints: Endpoints,
    /// Connect time, µs since the epoch.
    pub connect_time: u64,
    remote_pid: AtomicU64,
    request_time: AtomicU64,
    state: AtomicU8,
    link: AtomicU64,
    close_needed: AtomicBool,
    application_name: Mutex<String>,
    local: std::sync::OnceLock<(String, u16)>,
}

impl ServerInfo {
    /// A server being logged in.
    pub fn new(id: u64, endpoints: Endpoints) -> Self {
        let now = now_us();
        ServerInfo {
            id,
            endpoints,
            connect_time: now,
            remote_pid: AtomicU64::new(0),
            request_time: AtomicU64::new(now),
            state: AtomicU8::new(ServerState::Login as u8),
            link: AtomicU64::new(0),
            close_needed: AtomicBool::new(false),
            application_name: Mutex::new(String::new()),
            local: std::sync::OnceLock::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> ServerState {
        ServerState::from_u8(self.state.load(Relaxed))
    }

    /// Moves to `state`; `Active` records the request time.
    pub fn set_state(&self, state: ServerState) {
        if state == ServerState::Active {
            self.set_active(now_us());
            return;
        }
        self.link.store(0, Relaxed);
        self.state.store(state as u8, Relaxed);
    }

    /// Moves to `active`, handed out at `now` (µs, [`wall_us`]).
    pub fn set_active(&self, now: u64) {
        self.request_time.store(now, Relaxed);
        self.state.store(ServerState::Active as u8, Relaxed);
    }

    /// Linked to client `client_id`, whose application_name it already shows.
    pub fn set_link(&self, client_id: u64) {
        self.link.store(client_id, Relaxed);
    }

    /// Linked to client `client_id` whose application_name is `app`.
    pub fn link_client(&self, client_id: u64, app: &str) {
        self.link.store(client_id, Relaxed);
        let mut current = lock(&self.application_name);
        if *current != app {
            app.clone_into(&mut current);
        }
    }

    /// The linked client's id, 0 when none.
    pub fn link(&self) -> u64 {
        self.link.load(Relaxed)
    }

    /// The last linked client's application_name.
    pub fn application_name(&self) -> String {
        lock(&self.application_name).clone()
    }

    /// Last time a client got it, µs since the epoch.
    pub fn request_time(&self) -> u64 {
        self.request_time.load(Relaxed)
    }

    /// Records the backend pid (from BackendKeyData).
    pub fn set_remote_pid(&self, pid: i32) {
        self.remote_pid
            .store(u64::try_from(pid).unwrap_or(0), Relaxed);
    }

    /// The backend pid.
    pub fn remote_pid(&self) -> u64 {
        self.remote_pid.load(Relaxed)
    }

    /// Records the local end of the socket once connected.
    pub fn set_local(&self, addr: String, port: u16) {
        let _ = self.local.set((addr, port));
    }

    /// The local end of the socket (`("", 0)` before connecting or over a unix socket).
    pub fn local(&self) -> (&str, u16) {
        self.local
            .get()
            .map_or(("", 0), |(addr, port)| (addr.as_str(), *port))
    }

    /// RECONNECT: close the connection when it is next released.
    pub fn mark_close_needed(&self) {
        self.close_needed.store(true, Relaxed);
    }

    /// Whether RECONNECT asked for it to close.
    pub fn close_needed(&self) -> bool {
        self.close_needed.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_leave_the_registry_with_their_handle() {
        let registry = Arc::new(ClientRegistry::default());
        let handle = registry.register(ClientInfo::new(
            7,
            "u".into(),
            "db".into(),
            Endpoints::default(),
        ));
        handle.waiting(now_us());
        assert_eq!(
            registry.get(7).map(|c| c.state()),
            Some(ClientState::Waiting)
        );
        handle.linked(3);
        assert_eq!((handle.state(), handle.link()), (ClientState::Active, 3));
        drop(handle);
        assert!(registry.snapshot().is_empty());
    }
}

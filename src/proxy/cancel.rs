//! Cancel requests: each client gets a pooler-issued BackendKeyData; a CancelRequest carrying it
//! is forwarded, on a new socket, to the server that client holds at that moment, with the
//! server's own key. Keys are random, so one client cannot guess another's.
//!
//! Peering (`peer_id`, `[peers]`), in PgBouncer 1.21's key format: several poolers behind one
//! load balancer each write their peer id into bytes 1-2 of the keys they issue and set the two
//! low bits of byte 7 (a forwarding TTL). A cancel that reaches the wrong pooler is passed on to
//! the peer its key names, one TTL step lower, so PgBouncer and bouncectl peers interoperate.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UnixStream};

use super::Shared;
use crate::FastMap;
use crate::config::Key;
use crate::pool::Pool;
use crate::protocol::startup;
use crate::registry::ClientInfo;
use crate::stats::Counted;

/// The pooler-issued key of one client: process id and a 4-byte secret, as PostgreSQL's.
pub type ClientKey = (i32, [u8; 4]);

pub use crate::pool::server::CancelTarget;

/// One client's way to the server it holds: its pool and registry entry, attached once after
/// login. The server is looked up from the entry's link only when a cancel arrives, so taking
/// and releasing servers costs the relay nothing here.
#[derive(Default)]
pub struct CancelSlot {
    client: OnceLock<(Weak<Pool>, Arc<ClientInfo>)>,
}

impl std::fmt::Debug for CancelSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CancelSlot")
            .field("client", &self.client.get().map(|(_, c)| c.id))
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Single assignments under the lock: a poisoned lock is still consistent.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl CancelSlot {
    /// The client logged in to `pool` and reports its links in `client`.
    pub fn attach(&self, pool: &Arc<Pool>, client: Arc<ClientInfo>) {
        // Attached once per client; a second call has nothing new to say.
        let _ = self.client.set((Arc::downgrade(pool), client));
    }

    /// Where a cancel goes now: nowhere while the client holds no server (cancels aimed at a
    /// released server are dropped, as in PgBouncer).
    fn target(&self) -> Option<Arc<CancelTarget>> {
        let (pool, client) = self.client.get()?;
        match client.link() {
            0 => None,
            server => pool.upgrade()?.cancel_target(server),
        }
    }
}

/// Every live client's key, for CancelRequests arriving on new connections.
#[derive(Debug, Default)]
pub struct CancelMap {
    clients: Mutex<FastMap<ClientKey, Weak<CancelSlot>>>,
}

impl CancelMap {
    /// Issues a fresh random key and slot for a new client; with `peer_id` above 0 the key
    /// carries it (and a full TTL) for peers to route by.
    pub fn register(&self, peer_id: u16) -> Result<(ClientKey, Arc<CancelSlot>), getrandom::Error> {
        let slot = Arc::new(CancelSlot::default());
        loop {
            // Drawn before taking the lock, which every login and logout on every thread takes.
            let mut raw = [0u8; 8];
            crate::auth::random::fill(&mut raw)?;
            mark_peer(&mut raw, peer_id);
            let [a, b, c, d, e, f, g, h] = raw;
            let key = (i32::from_be_bytes([a & 0x7f, b, c, d]), [e, f, g, h]);
            if let std::collections::hash_map::Entry::Vacant(v) = lock(&self.clients).entry(key) {
                v.insert(Arc::downgrade(&slot));
                return Ok((key, slot));
            }
        }
    }

    /// Forgets a client's key (it disconnected).
    pub fn remove(&self, key: &ClientKey) {
        lock(&self.clients).remove(key);
    }

    /// The current target for a key, if the client exists and holds a server.
    pub fn target(&self, key: &ClientKey) -> Option<Arc<CancelTarget>> {
        let slot = lock(&self.clients).get(key)?.upgrade()?;
        slot.target()
    }
}

/// The TTL bits of a peered key (byte 7): how many more times it may be forwarded.
const TTL_MASK: u8 = 0x03;

/// Cancels forwarded to peers, by peer id (PgBouncer's peer pools).
#[derive(Debug, Default)]
pub struct PeerCancels {
    pools: Mutex<FastMap<u16, Arc<PeerPool>>>,
}

/// One peer's forwarded cancels: at most `size` are sent at once, the rest wait for a slot.
#[derive(Debug)]
pub struct PeerPool {
    size: usize,
    slots: tokio::sync::Semaphore,
    sending: AtomicUsize,
    waiting: AtomicUsize,
}

impl PeerCancels {
    /// Peer `id`'s pool, made (or remade, when a reload changed its size) with `size` slots;
    /// cancels in flight keep the pool they started in.
    pub fn pool(&self, id: u16, size: usize) -> Arc<PeerPool> {
        let size = size.max(1);
        let mut pools = lock(&self.pools);
        let pool = pools
            .entry(id)
            .or_insert_with(|| Arc::new(PeerPool::new(size)));
        if pool.size != size {
            *pool = Arc::new(PeerPool::new(size));
        }
        Arc::clone(pool)
    }

    /// (peer id, cancels being sent, cancels waiting for a slot), by peer id.
    pub fn counts(&self) -> Vec<(u16, usize, usize)> {
        let load = |n: &AtomicUsize| n.load(Ordering::Relaxed);
        let mut counts: Vec<_> = lock(&self.pools)
            .iter()
            .map(|(id, p)| (*id, load(&p.sending), load(&p.waiting)))
            .collect();
        counts.sort_unstable();
        counts
    }
}

impl PeerPool {
    fn new(size: usize) -> Self {
        PeerPool {
            size,
            slots: tokio::sync::Semaphore::new(size),
            sending: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Sends the cancel to peer `id` once a slot is free; `timeout` (`cancel_wait_timeout`)
    /// bounds the wait for a slot and the sending each.
    async fn forward(&self, id: u16, target: &CancelTarget, timeout: Duration) {
        let waiting = Counted::new(&self.waiting);
        let slot = tokio::time::timeout(timeout, self.slots.acquire()).await;
        drop(waiting);
        let Ok(Ok(_slot)) = slot else {
            tracing::warn!("cancel request for peer {id}: no free slot within cancel_wait_timeout");
            return;
        };
        let _sending = Counted::new(&self.sending);
        if let Err(e) = forward(target, timeout).await {
            tracing::warn!(error = %e, "cancel request for peer {id} not forwarded");
        }
    }
}

/// Writes `peer_id` (when above 0) and a full TTL into a fresh random key, as PgBouncer does.
pub fn mark_peer(raw: &mut [u8; 8], peer_id: u16) {
    if peer_id > 0 {
        [raw[1], raw[2]] = peer_id.to_le_bytes();
        raw[7] |= TTL_MASK;
    }
}

/// Where a CancelRequest's key leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// One of this pooler's clients (the key as issued).
    Local(ClientKey),
    /// Another peer's client: forward this key (its TTL one lower) to that peer.
    Peer(u16, ClientKey),
    /// Another peer's, but forwarded too often already (a routing loop); dropped.
    Exhausted(u16),
}

/// Routes `key` for a pooler whose `peer_id` is `own` (0: peering off, every key is local).
pub fn route(key: ClientKey, own: u16) -> Route {
    if own == 0 {
        return Route::Local(key);
    }
    let (pid, mut secret) = key;
    let [_, low, high, _] = pid.to_be_bytes();
    let peer = u16::from_le_bytes([low, high]);
    if peer == own {
        // Issued keys always carry a full TTL; a forwarded one arrives lower.
        secret[3] |= TTL_MASK;
        return Route::Local((pid, secret));
    }
    if secret[3] & TTL_MASK == 0 {
        return Route::Exhausted(peer);
    }
    secret[3] -= 1;
    Route::Peer(peer, (pid, secret))
}

/// Answers a CancelRequest: forwards it to the server its client holds, or with peering to the
/// peer its key names. Nothing is answered to the sender, as in PostgreSQL.
pub async fn handle(shared: &Shared, key: ClientKey) {
    let config = shared.config();
    let timeout = config.pgbouncer.duration(Key::CancelWaitTimeout);
    match route(key, config.pgbouncer.peer_id()) {
        Route::Local(key) => {
            // Unknown key, or its client holds no server: nothing to cancel.
            let Some(target) = shared.cancels.target(&key) else {
                return;
            };
            if let Err(e) = forward(&target, timeout).await {
                tracing::warn!(error = %e, "cancel request not forwarded");
            }
        }
        Route::Peer(id, (pid, secret)) => {
            let Some(peer) = config.peers.get(&id) else {
                tracing::warn!(
                    "cancel request for peer {id}: could not find peer to forward request to"
                );
                return;
            };
            let target = CancelTarget {
                host: peer.host.clone(),
                port: peer.port,
                addr: None,
                key: (pid, secret.to_vec()),
                tls: shared.tls(),
            };
            let size = usize::try_from(config.peer_pool_size(peer)).unwrap_or(1);
            let pool = shared.peer_cancels.pool(id, size);
            pool.forward(id, &target, timeout).await;
        }
        Route::Exhausted(id) => tracing::warn!(
            "cancel request for peer {id}: failed to forward cancel request because its TTL was exhausted"
        ),
    }
}

/// Sends a CancelRequest for `target` to its server, waiting at most `timeout`; over TCP it
/// negotiates TLS per `server_tls_sslmode` first, as the server connection did.
pub async fn forward(target: &CancelTarget, timeout: Duration) -> std::io::Result<()> {
    let mut packet = BytesMut::new();
    startup::cancel_request(&mut packet, target.key.0, &target.key.1)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    let send = async {
        if target.host.starts_with('/') {
            let path = format!("{}/.s.PGSQL.{}", target.host, target.port);
            let mut s = UnixStream::connect(path).await?;
            s.write_all(&packet).await?;
            s.shutdown().await
        } else {
            let tcp = match target.addr {
                Some(addr) => TcpStream::connect(addr).await?,
                None => TcpStream::connect((target.host.as_str(), target.port)).await?,
            };
            let mut s = target
                .tls
                .connect_server(tcp, &target.host)
                .await
                .map_err(std::io::Error::other)?;
            s.write_all(&packet).await?;
            s.shutdown().await
        }
    };
    tokio::time::timeout(timeout, send)
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "cancel_wait_timeout"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    // Attached slots are exercised against real servers in tests/it (limits::cancel_*).
    #[test]
    fn keys_of_unattached_or_removed_clients_find_nothing() {
        let map = CancelMap::default();
        let (key, slot) = map.register(0).unwrap();
        let (other, _slot) = map.register(0).unwrap();
        assert_ne!(key, other, "keys are unique");
        assert!(map.target(&key).is_none(), "not attached");
        drop(slot);
        assert!(map.target(&key).is_none(), "the slot is gone");
        map.remove(&key);
        assert!(map.target(&key).is_none());
    }

    #[test]
    fn peered_keys_carry_the_peer_id_and_a_full_ttl() {
        let map = CancelMap::default();
        for _ in 0..50 {
            let ((pid, secret), _slot) = map.register(0x1234).unwrap();
            let [sign, low, high, _] = pid.to_be_bytes();
            assert_eq!(
                (low, high),
                (0x34, 0x12),
                "peer id little-endian in bytes 1-2"
            );
            assert_eq!(sign & 0x80, 0, "the pid stays positive");
            assert_eq!(secret[3] & TTL_MASK, TTL_MASK);
            assert_eq!(route((pid, secret), 0x1234), Route::Local((pid, secret)));
        }
    }

    #[test]
    fn keys_route_to_their_peer_until_the_ttl_runs_out() {
        let key_of = |peer: u16, last: u8| {
            let [low, high] = peer.to_le_bytes();
            (i32::from_be_bytes([0x11, low, high, 0x22]), [1, 2, 3, last])
        };
        // Peering off: everything is ours, untouched.
        assert_eq!(route(key_of(7, 0x40), 0), Route::Local(key_of(7, 0x40)));
        // Ours, arriving with a spent TTL from a peer: looked up with the bits restored.
        assert_eq!(route(key_of(7, 0x41), 7), Route::Local(key_of(7, 0x43)));
        // Another peer's: passed on with one TTL step less, until none is left.
        assert_eq!(route(key_of(9, 0x43), 7), Route::Peer(9, key_of(9, 0x42)));
        assert_eq!(route(key_of(9, 0x41), 7), Route::Peer(9, key_of(9, 0x40)));
        assert_eq!(route(key_of(9, 0x40), 7), Route::Exhausted(9));
    }
}

//! Cancel requests: each client gets a pooler-issued BackendKeyData; a CancelRequest carrying it
//! is forwarded, on a new socket, to the server that client holds at that moment, with the
//! server's own key. Keys are random, so one client cannot guess another's.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpStream, UnixStream};

use crate::FastMap;
use crate::pool::Pool;
use crate::protocol::startup;
use crate::registry::ClientInfo;

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
    /// Issues a fresh random key and slot for a new client.
    pub fn register(&self) -> Result<(ClientKey, Arc<CancelSlot>), getrandom::Error> {
        let slot = Arc::new(CancelSlot::default());
        let mut clients = lock(&self.clients);
        loop {
            let mut raw = [0u8; 8];
            getrandom::getrandom(&mut raw)?;
            let [a, b, c, d, e, f, g, h] = raw;
            let key = (i32::from_be_bytes([a & 0x7f, b, c, d]), [e, f, g, h]);
            if let std::collections::hash_map::Entry::Vacant(v) = clients.entry(key) {
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
        let (key, slot) = map.register().unwrap();
        let (other, _slot) = map.register().unwrap();
        assert_ne!(key, other, "keys are unique");
        assert!(map.target(&key).is_none(), "not attached");
        drop(slot);
        assert!(map.target(&key).is_none(), "the slot is gone");
        map.remove(&key);
        assert!(map.target(&key).is_none());
    }
}

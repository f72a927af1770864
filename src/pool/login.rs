//! Opening server connections for a pool: a client's login with its retries through a
//! database that refuses for now, `server_login_retry` and its cached error, the janitor's
//! `min_pool_size` spares, passthrough's password check, and the SHOW SERVERS entry a login
//! makes.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::hosts::Host;
use super::queue::CheckoutError;
use super::server::{self, LoginInfo, ServerConn, ServerError};
use super::{Pool, PoolError, Welcome, lock};
use crate::registry::{Addr, Endpoints, ServerInfo, ServerState};

/// The shortest pause between failed logins of one pool, also with `server_login_retry = 0`.
pub(super) const MIN_RETRY: Duration = Duration::from_millis(100);

/// Who meets a remembered login failure ([`Pool::login_retry`]).
#[derive(Debug, Clone, Copy)]
pub(super) enum Asker {
    /// A client asking for a server, before any queue.
    New,
    /// A client that got a slot to open a server without waiting for it.
    Opening,
    /// A client that waited in the queue for its slot; its `query_wait_timeout` deadline.
    Waiting(Option<Instant>),
}

impl Pool {
    /// Logs in a new server with the current credential, proving it; the connection joins the
    /// pool when there is room.
    pub async fn login_check(&self) -> Result<(), PoolError> {
        // A password being tried (passthrough) is no verdict on the server: not remembered.
        self.open_idle(false).await
    }

    async fn open_idle(&self, record: bool) -> Result<(), PoolError> {
        let server = self.login_server(record).await?;
        if let Err(server) = self.queue.adopt(server) {
            self.forget(server.id);
            tokio::spawn(server.terminate());
        }
        Ok(())
    }

    /// Opens one connection for `min_pool_size` into the idle list, unless a login failed within
    /// `server_login_retry`; a failure starts that delay. The slot is taken before the login:
    /// with the pool, `max_db_connections` or `max_user_connections` full there is no login
    /// at all (false), where one made first would be closed at once, every janitor tick.
    pub async fn open_spare(&self) -> Result<bool, PoolError> {
        if let Some((failure, _)) = self.retry.cached(self.settings().server_login_retry) {
            return Err(PoolError::LoginFailing(failure.reason));
        }
        let Some(slot) = self.queue.try_slot() else {
            return Ok(false);
        };
        let server = self.login_server(true).await?;
        slot.fill();
        self.release(server);
        Ok(true)
    }

    /// Logs in a server for a client that asked at `started` and holds an open slot. One that
    /// had to wait in the queue (`queued`) keeps waiting while the database answers that it
    /// cannot take connections now (57P03: starting up, shutting down): it tries again each
    /// `server_login_retry`, until its `query_wait_timeout`, as PgBouncer keeps its waiting
    /// clients through that answer, so a restart can cost those clients a wait instead of an
    /// error. Any other failure, and any failure of a client that did not wait, is returned
    /// at once ([`Pool::acquire`] still keeps the client waiting when the pool has servers).
    pub(super) async fn open_for(
        &self,
        started: Instant,
        queued: bool,
    ) -> Result<ServerConn, PoolError> {
        let waiting = queued.then(|| self.queue.wait_timeout().map(|t| started + t));
        loop {
            if self.retry.is_failing() {
                self.login_retry(waiting.map_or(Asker::Opening, Asker::Waiting))
                    .await?;
            }
            match self.login_server(true).await {
                Err(e) if e.is_temporary() && waiting.is_some() => {
                    if waiting.flatten().is_some_and(|d| Instant::now() >= d) {
                        return Err(CheckoutError::WaitTimeout.into());
                    }
                    // With `server_login_retry = 0` nothing else spaces the tries out.
                    if self.settings().server_login_retry.is_zero() {
                        tokio::time::sleep(MIN_RETRY).await;
                    }
                }
                done => return done.map_err(PoolError::from),
            }
        }
    }

    /// Servers logged in, in use or idle.
    pub(super) fn servers_up(&self) -> usize {
        lock(&self.servers)
            .values()
            .filter(|s| s.state() != ServerState::Login)
            .count()
    }

    /// `server_login_retry` after a failed login, for `asker`. With no server up, the cached
    /// error goes to a new request and to one about to open a server, and to a waiting one
    /// unless the database refused only for now. Otherwise one about to open a server waits
    /// out the rest of the delay, so a struggling server is not hammered; a waiting one fails
    /// with `query_wait_timeout` if its deadline comes first.
    pub(super) async fn login_retry(&self, asker: Asker) -> Result<(), PoolError> {
        let Some((failure, until)) = self.retry.cached(self.settings().server_login_retry) else {
            return Ok(());
        };
        let refuse = self.servers_up() == 0
            && match asker {
                Asker::New | Asker::Opening => true,
                Asker::Waiting(_) => !failure.temporary,
            };
        if refuse {
            return Err(PoolError::LoginFailing(failure.reason));
        }
        match asker {
            Asker::New => Ok(()),
            Asker::Waiting(Some(deadline)) if deadline < until => {
                tokio::time::sleep_until(deadline).await;
                Err(CheckoutError::WaitTimeout.into())
            }
            Asker::Opening | Asker::Waiting(_) => {
                tokio::time::sleep_until(until).await;
                Ok(())
            }
        }
    }

    /// Opens and logs in a new server connection (its slot must already be counted), trying the
    /// database's hosts in `load_balance_hosts` order. `record`: a failure starts
    /// `server_login_retry`.
    async fn login_server(&self, record: bool) -> Result<ServerConn, ServerError> {
        let info = lock(&self.login).clone();
        let mut last = ServerError::Unsupported("the database has no host");
        for (index, host) in info.hosts.attempt_order() {
            match self.login_to(&info, host).await {
                Ok(server) => {
                    info.hosts.succeeded(index);
                    self.retry.succeeded();
                    return Ok(server);
                }
                Err(e) => {
                    info.hosts.failed(index);
                    last = e;
                }
            }
        }
        if record {
            self.retry.failed(&last);
        }
        Err(last)
    }

    async fn login_to(&self, info: &LoginInfo, host: &Host) -> Result<ServerConn, ServerError> {
        let id = self.server_ids.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(ServerInfo::new(
            id,
            Endpoints {
                addr: Addr::Named(host.host.clone().into()),
                port: host.port,
                ..Endpoints::default()
            },
        ));
        lock(&self.servers).insert(id, Arc::clone(&entry));
        // Removes the entry when the login fails or its future is dropped (client gone, timeout).
        let listed = Listed {
            servers: &self.servers,
            id: Some(id),
        };
        let mut server = match ServerConn::connect(info, host, id).await {
            Ok(server) => server,
            Err(e) => {
                // Each error names what failed, but a refusal is the server's own words alone.
                let refused = match e {
                    ServerError::Refused { .. } => "server login failed: ",
                    _ => "",
                };
                tracing::warn!(
                    server = format_args!("S-{id:#x}"),
                    db = %self.database,
                    user = %self.user,
                    addr = format_args!("{}:{}", host.host, host.port),
                    "{refused}{e}"
                );
                return Err(e);
            }
        };
        listed.keep();
        entry.set_remote_pid(server.cancel.key.0);
        if let server::ServerStream::Tcp(tcp) = &server.stream {
            if let Ok(local) = tcp.local_addr() {
                entry.set_local(local.ip().to_string(), local.port());
            }
        }
        entry.set_state(ServerState::Idle);
        server.info = Some(Arc::clone(&entry));
        lock(&self.cancel_targets).insert(id, Arc::clone(&server.cancel));
        if self.settings().log_connections {
            tracing::info!(
                server = format_args!("S-{id:#x}"),
                db = %self.database,
                user = %self.user,
                addr = %server.addr,
                tls = server.stream.tls_description().as_deref().unwrap_or("no"),
                "new connection to server"
            );
        }
        let mut welcome = lock(&self.welcome);
        if welcome.is_none() {
            *welcome = Some(Arc::new(Welcome::new(server.params.clone())));
        }
        Ok(server)
    }
}

/// A server entry that leaves the pool's list on drop unless kept.
struct Listed<'a> {
    servers: &'a Mutex<BTreeMap<u64, Arc<ServerInfo>>>,
    id: Option<u64>,
}

impl Listed<'_> {
    fn keep(mut self) {
        self.id = None;
    }
}

impl Drop for Listed<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            lock(self.servers).remove(&id);
        }
    }
}
